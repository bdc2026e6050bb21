//! The cloud behind the contract server: tokens, servers, key pairs and Neutron resources
//! behind one mutex, and the handlers of every endpoint. Status codes and bodies follow the
//! API references: Keystone 201 + `X-Subject-Token`; Nova 202 for server create, 204 for server
//! delete, 200/202 for key pairs, `{"itemNotFound": …}` and friends; Neutron 201/200/204 and
//! `{"NeutronError": …}`; a network or subnet that still has ports, and a security group a
//! port uses, answer 409 to a delete.

use std::collections::{BTreeMap, HashMap};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value as Json, json};

use super::Options;

/// The image id every test may boot (the api-ref's example image).
pub const IMAGE: &str = "70a599e0-31e7-49b7-b260-868f441e862b";
const FLAVORS: &[&str] = &["1", "2", "3"];
const USER_ID: &str = "ee4dfb6e5540447cb3741905149d9b6e";
const PROJECT_ID: &str = "6e84c32e6a3b4b0b9c9f0e5b6a2c1d00";

/// An answer: status, JSON body, extra headers.
pub struct Answer {
    pub status: u16,
    pub body: Option<Json>,
    pub headers: Vec<(String, String)>,
}

fn answer(status: u16, body: Json) -> Answer {
    Answer {
        status,
        body: Some(body),
        headers: Vec::new(),
    }
}

fn empty(status: u16) -> Answer {
    Answer {
        status,
        body: None,
        headers: Vec::new(),
    }
}

/// Nova's fault body: `{"itemNotFound": {"code": 404, "message": …}}`.
fn nova_fault(status: u16, message: impl Into<String>) -> Answer {
    let name = match status {
        400 => "badRequest",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "itemNotFound",
        409 => "conflictingRequest",
        503 => "serviceUnavailable",
        _ => "computeFault",
    };
    answer(
        status,
        json!({ name: { "code": status, "message": message.into() } }),
    )
}

/// Neutron's fault body.
fn neutron_fault(status: u16, kind: &str, message: impl Into<String>) -> Answer {
    answer(
        status,
        json!({ "NeutronError": { "type": kind, "message": message.into(), "detail": "" } }),
    )
}

fn unauthorized() -> Answer {
    answer(
        401,
        json!({ "error": { "code": 401, "title": "Unauthorized",
            "message": "The request you have made requires authentication." } }),
    )
}

/// The answer to an injected fault, in the service's body shape.
pub fn injected(path: &str, status: u16, message: Option<&str>) -> Answer {
    let mut a = if path.starts_with("/network/") {
        let kind = match status {
            400 => "HTTPBadRequest",
            403 => "HTTPForbidden",
            404 => "HTTPNotFound",
            409 => "Conflict",
            503 => "ServiceUnavailable",
            _ => "HTTPInternalServerError",
        };
        neutron_fault(
            status,
            kind,
            message.unwrap_or("Request failed: injected by the test"),
        )
    } else {
        nova_fault(
            status,
            message.unwrap_or("Unexpected API Error (injected by the test)"),
        )
    };
    if status == 503 {
        a.headers.push(("Retry-After".into(), "0".into()));
    }
    a
}

/// An ISO 8601 UTC time as OpenStack writes it.
fn iso(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = windlass::store::civil_from_days(secs.div_euclid(86_400));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.000000Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

struct Server {
    body: Json,
    /// Reads left in BUILD.
    build_left: u32,
    /// When the build ends in ERROR: the fault message.
    fails_with: Option<String>,
    /// Reads left before a deleted server is gone.
    deleting: Option<u32>,
}

pub struct Cloud {
    url: String,
    options: Options,
    serial: u64,
    /// Token → requests it may still authenticate.
    tokens: HashMap<String, u32>,
    issued: usize,
    servers: BTreeMap<String, Server>,
    order: Vec<String>,
    failing: HashMap<String, String>,
    keypairs: BTreeMap<String, Json>,
    /// Neutron kind path → id → resource, in creation order.
    neutron: HashMap<&'static str, Vec<Json>>,
    next_fixed: u32,
    next_floating: u32,
}

const KINDS: &[(&str, &str, &str)] = &[
    ("networks", "network", "Network"),
    ("subnets", "subnet", "Subnet"),
    ("ports", "port", "Port"),
    ("security-groups", "security_group", "SecurityGroup"),
    (
        "security-group-rules",
        "security_group_rule",
        "SecurityGroupRule",
    ),
    ("floatingips", "floatingip", "FloatingIP"),
];

impl Cloud {
    pub fn new(url: &str, options: &Options) -> Cloud {
        let mut c = Cloud {
            url: url.to_string(),
            options: options.clone(),
            serial: 0,
            tokens: HashMap::new(),
            issued: 0,
            servers: BTreeMap::new(),
            order: Vec::new(),
            failing: HashMap::new(),
            keypairs: BTreeMap::new(),
            neutron: KINDS.iter().map(|(k, _, _)| (*k, Vec::new())).collect(),
            next_fixed: 3,
            next_floating: 10,
        };
        let private = c.uuid();
        c.insert(
            "networks",
            json!({ "id": private, "name": "private", "status": "ACTIVE",
            "admin_state_up": true, "router:external": false, "shared": false,
            "subnets": [], "tenant_id": PROJECT_ID, "project_id": PROJECT_ID }),
        );
        let subnet = c.uuid();
        c.insert(
            "subnets",
            json!({ "id": subnet, "name": "private-subnet", "network_id": private,
            "cidr": "10.0.0.0/24", "ip_version": 4, "enable_dhcp": true, "gateway_ip": "10.0.0.1",
            "tenant_id": PROJECT_ID, "project_id": PROJECT_ID }),
        );
        let public = c.uuid();
        c.insert(
            "networks",
            json!({ "id": public, "name": "public", "status": "ACTIVE",
            "admin_state_up": true, "router:external": true, "shared": false,
            "subnets": [], "tenant_id": PROJECT_ID, "project_id": PROJECT_ID }),
        );
        c
    }

    fn uuid(&mut self) -> String {
        self.serial += 1;
        let n = self.serial;
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            0x5e17_0000u64 + n,
            n & 0xffff,
            n & 0xfff,
            (n * 7) & 0xfff,
            n * 2_654_435_761
        )
    }

    fn insert(&mut self, kind: &'static str, resource: Json) {
        self.neutron
            .get_mut(kind)
            .expect("a known kind")
            .push(resource);
    }

    fn find(&self, kind: &str, id: &str) -> Option<&Json> {
        self.neutron.get(kind)?.iter().find(|r| r["id"] == id)
    }

    fn find_mut(&mut self, kind: &str, id: &str) -> Option<&mut Json> {
        self.neutron
            .get_mut(kind)?
            .iter_mut()
            .find(|r| r["id"] == id)
    }

    pub fn expire_tokens(&mut self) {
        self.tokens.values_mut().for_each(|v| *v = 0);
    }

    pub fn tokens_issued(&self) -> usize {
        self.issued
    }

    pub fn fail_build(&mut self, name: &str, message: &str) {
        self.failing.insert(name.to_string(), message.to_string());
    }

    pub fn vanish(&mut self, id: &str) {
        self.servers.remove(id);
        self.order.retain(|i| i != id);
        self.release_ports(id);
    }

    pub fn seed_server(&mut self, name: &str) -> String {
        let id = self.create_server_record(name, json!({}));
        if let Some(s) = self.servers.get_mut(&id) {
            s.build_left = 0;
        }
        id
    }

    pub fn servers(&self) -> Vec<Json> {
        self.order
            .iter()
            .filter_map(|id| self.servers.get(id))
            .map(|s| self.show(s))
            .collect()
    }

    pub fn neutron(&self, kind: &str) -> Vec<Json> {
        self.neutron.get(kind).cloned().unwrap_or_default()
    }

    pub fn keypairs(&self) -> Vec<String> {
        self.keypairs.keys().cloned().collect()
    }

    pub fn public_network(&self) -> String {
        self.neutron["networks"]
            .iter()
            .find(|n| n["name"] == "public")
            .and_then(|n| n["id"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    /// Route one request.
    pub fn handle(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        token: Option<&str>,
        body: Option<&Json>,
    ) -> Answer {
        if path == "/identity/v3/auth/tokens" && method == "POST" {
            return self.authenticate(body);
        }
        match token.and_then(|t| self.tokens.get_mut(t)) {
            Some(uses) if *uses > 0 => *uses -= 1,
            _ => return unauthorized(),
        }
        let query = super::loopback::decode_query(query);
        if let Some(rest) = path.strip_prefix("/compute/v2.1") {
            return self.nova(method, rest, &query, body);
        }
        if let Some(rest) = path.strip_prefix("/network/v2.0") {
            return self.neutron_call(method, rest, &query, body);
        }
        answer(
            404,
            json!({ "error": { "code": 404, "message": "Not Found" } }),
        )
    }

    fn authenticate(&mut self, body: Option<&Json>) -> Answer {
        let Some(identity) = body.and_then(|b| b.pointer("/auth/identity")) else {
            return answer(
                400,
                json!({ "error": { "code": 400, "title": "Bad Request",
                "message": "Invalid input for field 'identity': 'identity' is a required property" } }),
            );
        };
        let methods: Vec<&str> = identity["methods"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .collect();
        let ok = if methods == ["password"] {
            let user = &identity["password"]["user"];
            let scope = body.and_then(|b| b.pointer("/auth/scope/project"));
            let domain_ok = |d: &Json| d["name"] == "Default" || d["id"] == "default";
            user["name"] == self.options.username.as_str()
                && domain_ok(&user["domain"])
                && user["password"] == self.options.password.as_str()
                && scope.is_some_and(|p| {
                    (p["name"] == self.options.project.as_str() && domain_ok(&p["domain"]))
                        || p["id"] == PROJECT_ID
                })
        } else if methods == ["application_credential"] {
            let c = &identity["application_credential"];
            self.options
                .application_credential
                .as_ref()
                .is_some_and(|(id, secret)| {
                    c["id"] == id.as_str() && c["secret"] == secret.as_str()
                })
        } else {
            false
        };
        if !ok {
            return unauthorized();
        }
        self.issued += 1;
        let token = format!("gAAAAAB{}{:08x}", self.uuid().replace('-', ""), self.issued);
        self.tokens
            .insert(token.clone(), self.options.token_uses.unwrap_or(u32::MAX));
        let now = SystemTime::now();
        let endpoints = |path: &str| {
            json!([
                { "id": format!("{path}-public"), "interface": "public", "region": "RegionOne",
                  "region_id": "RegionOne", "url": format!("{}/{path}", self.url) },
                { "id": format!("{path}-internal"), "interface": "internal", "region": "RegionOne",
                  "region_id": "RegionOne", "url": format!("{}/{path}", self.url) },
            ])
        };
        let body = json!({ "token": {
            "methods": methods,
            "user": { "id": USER_ID, "name": self.options.username,
                      "domain": { "id": "default", "name": "Default" }, "password_expires_at": null },
            "project": { "id": PROJECT_ID, "name": self.options.project,
                         "domain": { "id": "default", "name": "Default" } },
            "roles": [{ "id": "51cc68287d524c759f47c811e6463340", "name": "member" }],
            "audit_ids": ["3T2dc1CGQxyJsHdDu1xkcw"],
            "issued_at": iso(now),
            "expires_at": iso(now + std::time::Duration::from_secs(3600)),
            "is_domain": false,
            "catalog": [
                { "type": "identity", "name": "keystone", "id": "c1", "endpoints": endpoints("identity") },
                { "type": "compute", "name": "nova", "id": "c2", "endpoints": endpoints("compute/v2.1") },
                { "type": "network", "name": "neutron", "id": "c3", "endpoints": endpoints("network") },
            ],
        } });
        Answer {
            status: 201,
            body: Some(body),
            headers: vec![("X-Subject-Token".into(), token)],
        }
    }

    // ---------------------------------------------------------------- Nova

    fn nova(
        &mut self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&Json>,
    ) -> Answer {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        match (method, parts.as_slice()) {
            ("POST", ["servers"]) => self.create_server(body),
            ("GET", ["servers", "detail"]) => {
                let name = query
                    .iter()
                    .find(|(k, _)| k == "name")
                    .map(|(_, v)| v.clone());
                let pattern = match name.map(|n| regex::Regex::new(&n)) {
                    Some(Ok(r)) => Some(r),
                    Some(Err(_)) => {
                        return nova_fault(400, "Invalid regular expression in name filter");
                    }
                    None => None,
                };
                let servers: Vec<Json> = self
                    .servers()
                    .into_iter()
                    .filter(|s| {
                        pattern
                            .as_ref()
                            .is_none_or(|p| p.is_match(s["name"].as_str().unwrap_or_default()))
                    })
                    .collect();
                answer(200, json!({ "servers": servers }))
            }
            ("GET", ["servers", id]) => self.read_server(id),
            ("DELETE", ["servers", id]) => self.delete_server(id),
            ("POST", ["os-keypairs"]) => self.create_keypair(body),
            ("GET", ["os-keypairs"]) => {
                let list: Vec<Json> = self
                    .keypairs
                    .values()
                    .map(|k| json!({ "keypair": k }))
                    .collect();
                answer(200, json!({ "keypairs": list }))
            }
            ("GET", ["os-keypairs", name]) => match self.keypairs.get(*name) {
                Some(k) => answer(200, json!({ "keypair": k })),
                None => nova_fault(404, format!("Keypair {name} not found for user {USER_ID}")),
            },
            ("DELETE", ["os-keypairs", name]) => match self.keypairs.remove(*name) {
                Some(_) => empty(202),
                None => nova_fault(404, format!("Keypair {name} not found for user {USER_ID}")),
            },
            ("GET", ["flavors", id]) if FLAVORS.contains(id) => answer(
                200,
                json!({ "flavor": { "id": id, "name": format!("m1.{id}"), "vcpus": 1, "ram": 512, "disk": 1 } }),
            ),
            _ => nova_fault(404, "The resource could not be found."),
        }
    }

    fn create_server(&mut self, body: Option<&Json>) -> Answer {
        let Some(server) = body.and_then(|b| b.get("server")).and_then(Json::as_object) else {
            return nova_fault(
                400,
                "Invalid input for field/attribute server. Value: None. None is not of type 'object'",
            );
        };
        let Some(name) = server
            .get("name")
            .and_then(Json::as_str)
            .filter(|n| !n.trim().is_empty())
        else {
            return nova_fault(400, "Invalid input for field/attribute name.");
        };
        let Some(flavor) = server.get("flavorRef").and_then(Json::as_str) else {
            return nova_fault(
                400,
                "Invalid input for field/attribute flavorRef. Value: None.",
            );
        };
        if !FLAVORS.contains(&flavor) {
            return nova_fault(400, format!("Flavor {flavor} could not be found."));
        }
        match server.get("imageRef").and_then(Json::as_str) {
            Some(IMAGE) => {}
            Some(other) => return nova_fault(400, format!("Image {other} could not be found.")),
            None => {
                return nova_fault(
                    400,
                    "Block Device Mapping is Invalid: Boot sequence for the instance and image/block device mapping combination is not valid.",
                );
            }
        }
        if let Some(key) = server.get("key_name").and_then(Json::as_str)
            && !self.keypairs.contains_key(key)
        {
            return nova_fault(400, "Invalid key_name provided.");
        }
        if let Some(data) = server.get("user_data") {
            let valid = data.as_str().is_some_and(|d| {
                d.len() % 4 == 0
                    && d.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
            });
            if !valid {
                return nova_fault(400, "User data needs to be valid base 64.");
            }
        }
        let mut groups = Vec::new();
        for g in server
            .get("security_groups")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let wanted = g["name"].as_str().unwrap_or_default();
            let found = self.neutron["security-groups"]
                .iter()
                .find(|s| s["name"] == wanted || s["id"] == wanted)
                .cloned();
            match found {
                Some(s) => groups.push(s["id"].as_str().unwrap_or_default().to_string()),
                None => {
                    return nova_fault(
                        400,
                        format!("Security group {wanted} not found for project {PROJECT_ID}."),
                    );
                }
            }
        }
        if let Some(group) = body.and_then(|b| b.pointer("/os:scheduler_hints/group"))
            && !group.is_string()
        {
            return nova_fault(400, "Invalid input for field/attribute group.");
        }
        // Networks: each a network uuid (a new port on it) or a port that is not in use.
        let mut plan: Vec<(Option<String>, Option<String>)> = Vec::new(); // (network, port)
        match server.get("networks") {
            None => plan.push((self.network_named("private"), None)),
            Some(Json::String(s)) if s == "auto" || s == "none" => {
                if s == "auto" {
                    plan.push((self.network_named("private"), None));
                }
            }
            Some(Json::Array(list)) => {
                for n in list {
                    if let Some(port) = n.get("port").and_then(Json::as_str) {
                        match self.find("ports", port) {
                            None => {
                                return nova_fault(400, format!("Port {port} could not be found."));
                            }
                            Some(p) if p["device_id"].as_str().is_some_and(|d| !d.is_empty()) => {
                                return nova_fault(409, format!("Port {port} is still in use."));
                            }
                            Some(_) => plan.push((None, Some(port.to_string()))),
                        }
                    } else if let Some(net) = n.get("uuid").and_then(Json::as_str) {
                        if self.find("networks", net).is_none() {
                            return nova_fault(400, format!("Network {net} could not be found."));
                        }
                        plan.push((Some(net.to_string()), None));
                    } else {
                        return nova_fault(
                            400,
                            "Bad networks format: network uuid is not in proper format",
                        );
                    }
                }
            }
            Some(_) => return nova_fault(400, "Invalid input for field/attribute networks."),
        }
        let extra = json!({
            "key_name": server.get("key_name").cloned().unwrap_or(Json::Null),
            "metadata": server.get("metadata").cloned().unwrap_or(json!({})),
            "flavor": { "id": flavor, "links": [] },
            "image": { "id": IMAGE, "links": [] },
            "security_groups": groups.iter().map(|g| {
                let name = self.find("security-groups", g).map(|s| s["name"].clone()).unwrap_or(Json::Null);
                json!({ "name": name })
            }).collect::<Vec<_>>(),
        });
        let id = self.create_server_record(name, extra);
        // Ports: bound to the server now, as Nova asks Neutron during the build.
        for (net, port) in plan {
            let port_id = match port {
                Some(p) => p,
                None => {
                    let net = net.unwrap_or_default();
                    let fields = json!({ "network_id": net, "security_groups": groups });
                    match self.new_port(fields.as_object().cloned().unwrap_or_default()) {
                        Ok(p) => p["id"].as_str().unwrap_or_default().to_string(),
                        Err(a) => return a,
                    }
                }
            };
            if let Some(p) = self.find_mut("ports", &port_id) {
                p["device_id"] = json!(id);
                p["device_owner"] = json!("compute:nova");
                p["status"] = json!("ACTIVE");
            }
        }
        if let (Some(s), Some(m)) = (self.servers.get_mut(&id), self.failing.get(name)) {
            s.fails_with = Some(m.clone());
        }
        let admin_pass = format!("Pw{}", self.serial);
        let mut a = answer(
            202,
            json!({ "server": {
            "id": id,
            "links": [{ "rel": "self", "href": format!("{}/compute/v2.1/servers/{id}", self.url) }],
            "OS-DCF:diskConfig": "MANUAL",
            "security_groups": [{ "name": "default" }],
            "adminPass": admin_pass,
        } }),
        );
        a.headers.push((
            "Location".into(),
            format!("{}/compute/v2.1/servers/{id}", self.url),
        ));
        a
    }

    fn network_named(&self, name: &str) -> Option<String> {
        self.neutron["networks"]
            .iter()
            .find(|n| n["name"] == name)
            .and_then(|n| n["id"].as_str())
            .map(str::to_string)
    }

    fn create_server_record(&mut self, name: &str, extra: Json) -> String {
        let id = self.uuid();
        let now = iso(SystemTime::now());
        let mut body = json!({
            "id": id, "name": name, "status": "BUILD", "tenant_id": PROJECT_ID, "user_id": USER_ID,
            "created": now, "updated": now, "hostId": "", "addresses": {},
            "accessIPv4": "", "accessIPv6": "", "progress": 0,
            "OS-EXT-STS:vm_state": "building", "OS-EXT-STS:task_state": "scheduling",
            "OS-EXT-STS:power_state": 0, "OS-DCF:diskConfig": "MANUAL",
            "links": [{ "rel": "self", "href": format!("{}/compute/v2.1/servers/{id}", self.url) }],
        });
        if let (Some(b), Json::Object(e)) = (body.as_object_mut(), extra) {
            b.extend(e);
        }
        self.servers.insert(
            id.clone(),
            Server {
                body,
                build_left: self.options.build_polls,
                fails_with: None,
                deleting: None,
            },
        );
        self.order.push(id.clone());
        id
    }

    /// A server as `GET` shows it, addresses from its ports and their floating IPs.
    fn show(&self, s: &Server) -> Json {
        let mut body = s.body.clone();
        if body["status"] == "ACTIVE" {
            let id = body["id"].as_str().unwrap_or_default().to_string();
            let mut addresses = Map::new();
            for port in self.neutron["ports"]
                .iter()
                .filter(|p| p["device_id"] == id.as_str())
            {
                let net = self
                    .find("networks", port["network_id"].as_str().unwrap_or_default())
                    .and_then(|n| n["name"].as_str())
                    .unwrap_or("private")
                    .to_string();
                let mac = port["mac_address"].clone();
                let entry = addresses.entry(net).or_insert_with(|| json!([]));
                for f in port["fixed_ips"].as_array().into_iter().flatten() {
                    entry.as_array_mut().expect("a list").push(json!({ "version": 4,
                        "addr": f["ip_address"], "OS-EXT-IPS:type": "fixed", "OS-EXT-IPS-MAC:mac_addr": mac }));
                }
                for fip in self.neutron["floatingips"]
                    .iter()
                    .filter(|f| f["port_id"] == port["id"])
                {
                    entry.as_array_mut().expect("a list").push(json!({ "version": 4,
                        "addr": fip["floating_ip_address"], "OS-EXT-IPS:type": "floating", "OS-EXT-IPS-MAC:mac_addr": mac }));
                }
            }
            body["addresses"] = Json::Object(addresses);
        }
        body
    }

    fn read_server(&mut self, id: &str) -> Answer {
        let not_found = || nova_fault(404, format!("Instance {id} could not be found."));
        let Some(s) = self.servers.get_mut(id) else {
            return not_found();
        };
        if let Some(left) = s.deleting {
            if left == 0 {
                self.servers.remove(id);
                self.order.retain(|i| i != id);
                return not_found();
            }
            s.deleting = Some(left - 1);
        } else if s.body["status"] == "BUILD" {
            if s.build_left == 0 {
                match &s.fails_with {
                    Some(message) => {
                        s.body["status"] = json!("ERROR");
                        s.body["OS-EXT-STS:vm_state"] = json!("error");
                        s.body["OS-EXT-STS:task_state"] = Json::Null;
                        s.body["fault"] = json!({ "code": 500, "created": iso(SystemTime::now()),
                            "message": message, "details": "Traceback (most recent call last): …" });
                    }
                    None => {
                        s.body["status"] = json!("ACTIVE");
                        s.body["OS-EXT-STS:vm_state"] = json!("active");
                        s.body["OS-EXT-STS:task_state"] = Json::Null;
                        s.body["OS-EXT-STS:power_state"] = json!(1);
                        s.body["progress"] = json!(100);
                        s.body["hostId"] =
                            json!("8f3c2b1a9d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c");
                    }
                }
            } else {
                s.build_left -= 1;
                s.body["OS-EXT-STS:task_state"] = json!("spawning");
            }
        }
        let s = &self.servers[id];
        answer(200, json!({ "server": self.show(s) }))
    }

    fn delete_server(&mut self, id: &str) -> Answer {
        let Some(s) = self.servers.get_mut(id) else {
            return nova_fault(404, format!("Instance {id} could not be found."));
        };
        if s.deleting.is_none() {
            s.deleting = Some(self.options.delete_polls);
            s.body["OS-EXT-STS:task_state"] = json!("deleting");
        }
        self.release_ports(id);
        empty(204)
    }

    /// Delete the ports Nova made for a server and free the ones it was given.
    fn release_ports(&mut self, server: &str) {
        let ports: Vec<Json> = self.neutron["ports"]
            .iter()
            .filter(|p| p["device_id"] == server)
            .cloned()
            .collect();
        for p in ports {
            let pid = p["id"].clone();
            for f in self
                .neutron
                .get_mut("floatingips")
                .expect("kind")
                .iter_mut()
                .filter(|f| f["port_id"] == pid)
            {
                f["port_id"] = Json::Null;
                f["fixed_ip_address"] = Json::Null;
                f["status"] = json!("DOWN");
            }
            if p["name"] == "" {
                self.neutron
                    .get_mut("ports")
                    .expect("kind")
                    .retain(|q| q["id"] != pid);
            } else if let Some(q) = self.find_mut("ports", pid.as_str().unwrap_or_default()) {
                q["device_id"] = json!("");
                q["device_owner"] = json!("");
            }
        }
    }

    fn create_keypair(&mut self, body: Option<&Json>) -> Answer {
        let Some(k) = body
            .and_then(|b| b.get("keypair"))
            .and_then(Json::as_object)
        else {
            return nova_fault(400, "Invalid input for field/attribute keypair.");
        };
        let Some(name) = k.get("name").and_then(Json::as_str) else {
            return nova_fault(400, "Invalid input for field/attribute name.");
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " _-.@".contains(c))
        {
            return nova_fault(
                400,
                "Keypair data is invalid: Keypair name contains unsafe characters",
            );
        }
        if self.keypairs.contains_key(name) {
            return nova_fault(409, format!("Key pair '{name}' already exists."));
        }
        let fingerprint = format!(
            "{:02x}:{:02x}:{:02x}:{:02x}",
            self.serial % 256,
            name.len(),
            7,
            42
        );
        let mut stored = json!({ "name": name, "fingerprint": fingerprint, "type": "ssh",
            "user_id": USER_ID, "created_at": iso(SystemTime::now()), "deleted": false, "id": self.serial + 1 });
        let mut returned;
        match k.get("public_key").and_then(Json::as_str) {
            Some(public) => {
                if !public.starts_with("ssh-") && !public.starts_with("ecdsa-") {
                    return nova_fault(
                        400,
                        "Keypair data is invalid: failed to generate fingerprint",
                    );
                }
                stored["public_key"] = json!(public);
                returned = stored.clone();
            }
            None => {
                stored["public_key"] = json!(format!(
                    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{name} Generated-by-Nova"
                ));
                returned = stored.clone();
                returned["private_key"] = json!(
                    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
                );
            }
        }
        self.serial += 1;
        self.keypairs.insert(name.to_string(), stored);
        if let Some(m) = returned.as_object_mut() {
            m.remove("created_at");
            m.remove("deleted");
            m.remove("id");
        }
        answer(200, json!({ "keypair": returned }))
    }

    // ---------------------------------------------------------------- Neutron

    fn neutron_call(
        &mut self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        body: Option<&Json>,
    ) -> Answer {
        let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
        let Some(&(kind, singular, label)) =
            KINDS.iter().find(|(k, _, _)| Some(k) == parts.first())
        else {
            return neutron_fault(404, "HTTPNotFound", "The resource could not be found.");
        };
        let plural = kind.replace('-', "_");
        match (method, &parts[1..]) {
            ("GET", []) => {
                let list: Vec<Json> = self.neutron[kind]
                    .iter()
                    .filter(|r| {
                        query.iter().filter(|(k, _)| k != "fields").all(|(k, v)| {
                            match &r[k.as_str()] {
                                Json::String(s) => s == v,
                                Json::Bool(b) => *v == if *b { "true" } else { "false" },
                                Json::Null => v.is_empty(),
                                other => {
                                    serde_json::from_str::<Json>(v).ok().as_ref() == Some(other)
                                }
                            }
                        })
                    })
                    .cloned()
                    .collect();
                answer(200, json!({ plural: list }))
            }
            ("POST", []) => {
                let fields = match resource_body(body, singular) {
                    Ok(fields) => fields,
                    Err(a) => return a,
                };
                let created = match kind {
                    "networks" => self.new_network(fields),
                    "subnets" => self.new_subnet(fields),
                    "ports" => self.new_port(fields),
                    "security-groups" => self.new_security_group(fields),
                    "security-group-rules" => self.new_rule(fields),
                    _ => self.new_floating_ip(fields),
                };
                match created {
                    Ok(r) => answer(201, json!({ singular: r })),
                    Err(a) => a,
                }
            }
            ("GET", [id]) => match self.find(kind, id) {
                Some(r) => answer(200, json!({ singular: r })),
                None => not_found(label, id),
            },
            ("PUT", [id]) => {
                let fields = match resource_body(body, singular) {
                    Ok(fields) => fields,
                    Err(a) => return a,
                };
                if self.find(kind, id).is_none() {
                    return not_found(label, id);
                }
                if kind == "floatingips" {
                    return self.update_floating_ip(id, fields);
                }
                let r = self.find_mut(kind, id).expect("checked");
                for (k, v) in fields {
                    if k != "id" {
                        r[k.as_str()] = v;
                    }
                }
                answer(200, json!({ singular: r.clone() }))
            }
            ("DELETE", [id]) => {
                if self.find(kind, id).is_none() {
                    return not_found(label, id);
                }
                if kind == "security-groups" {
                    let in_use = self.neutron["ports"].iter().any(|p| {
                        p["security_groups"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|g| g == id)
                    });
                    if in_use {
                        return neutron_fault(
                            409,
                            "SecurityGroupInUse",
                            format!("Security Group {id} in use."),
                        );
                    }
                    self.neutron
                        .get_mut("security-group-rules")
                        .expect("kind")
                        .retain(|r| r["security_group_id"] != *id);
                }
                // As Neutron: a network or subnet with ports on it cannot go; a network's
                // subnets go with it.
                if kind == "networks" {
                    if self.neutron["ports"].iter().any(|p| p["network_id"] == *id) {
                        return neutron_fault(
                            409,
                            "NetworkInUse",
                            format!(
                                "Unable to complete operation on network {id}. There are one or more ports still in use on the network."
                            ),
                        );
                    }
                    self.neutron
                        .get_mut("subnets")
                        .expect("kind")
                        .retain(|s| s["network_id"] != *id);
                }
                if kind == "subnets"
                    && self.neutron["ports"].iter().any(|p| {
                        p["fixed_ips"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|ip| ip["subnet_id"] == *id)
                    })
                {
                    return neutron_fault(
                        409,
                        "SubnetInUse",
                        format!(
                            "Unable to complete operation on subnet {id}: One or more ports have an IP allocation from this subnet."
                        ),
                    );
                }
                self.neutron
                    .get_mut(kind)
                    .expect("kind")
                    .retain(|r| r["id"] != *id);
                empty(204)
            }
            _ => neutron_fault(
                405,
                "HTTPMethodNotAllowed",
                "The method is not allowed for this resource.",
            ),
        }
    }

    /// The id under `key` of a request's fields, which must name a resource of `kind` (`label`
    /// says which in the 404).
    fn existing(
        &self,
        fields: &Map<String, Json>,
        key: &str,
        kind: &str,
        label: &str,
    ) -> Result<String, Answer> {
        let id = fields
            .get(key)
            .and_then(Json::as_str)
            .unwrap_or_default()
            .to_string();
        match self.find(kind, &id) {
            Some(_) => Ok(id),
            None => Err(not_found(label, &id)),
        }
    }

    /// Add a new resource of `kind`; the answer to its create.
    fn created(&mut self, kind: &'static str, resource: Map<String, Json>) -> Result<Json, Answer> {
        let resource = Json::Object(resource);
        self.insert(kind, resource.clone());
        Ok(resource)
    }

    fn base(&mut self, mut fields: Map<String, Json>) -> Map<String, Json> {
        fields.insert("id".into(), json!(self.uuid()));
        fields.entry("name").or_insert(json!(""));
        fields.insert("tenant_id".into(), json!(PROJECT_ID));
        fields.insert("project_id".into(), json!(PROJECT_ID));
        let now = iso(SystemTime::now());
        fields.insert("created_at".into(), json!(now));
        fields.insert("updated_at".into(), json!(now));
        fields.insert("revision_number".into(), json!(1));
        fields
    }

    fn new_network(&mut self, fields: Map<String, Json>) -> Result<Json, Answer> {
        let mut n = self.base(fields);
        n.entry("admin_state_up").or_insert(json!(true));
        n.entry("router:external").or_insert(json!(false));
        n.entry("shared").or_insert(json!(false));
        n.insert("status".into(), json!("ACTIVE"));
        n.insert("subnets".into(), json!([]));
        self.created("networks", n)
    }

    fn new_subnet(&mut self, fields: Map<String, Json>) -> Result<Json, Answer> {
        let net = self.existing(&fields, "network_id", "networks", "Network")?;
        if fields.get("cidr").and_then(Json::as_str).is_none() {
            return Err(neutron_fault(
                400,
                "BadRequest",
                "Bad subnets request: a cidr must be specified in the absence of a subnet pool.",
            ));
        }
        let mut s = self.base(fields);
        s.entry("ip_version").or_insert(json!(4));
        s.entry("enable_dhcp").or_insert(json!(true));
        if let Some(n) = self.find_mut("networks", &net)
            && let Some(list) = n["subnets"].as_array_mut()
        {
            list.push(s["id"].clone());
        }
        self.created("subnets", s)
    }

    pub(crate) fn new_port(&mut self, fields: Map<String, Json>) -> Result<Json, Answer> {
        let net = self.existing(&fields, "network_id", "networks", "Network")?;
        for g in fields
            .get("security_groups")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let g = g.as_str().unwrap_or_default();
            if self.find("security-groups", g).is_none() {
                return Err(not_found("Security group", g));
            }
        }
        let subnet = self.neutron["subnets"]
            .iter()
            .find(|s| s["network_id"] == net.as_str())
            .and_then(|s| s["id"].as_str())
            .map(str::to_string);
        let ip = match &self.options.fixed_ip {
            Some(ip) => ip.clone(),
            None => {
                self.next_fixed += 1;
                format!(
                    "10.0.{}.{}",
                    (self.next_fixed - 1) / 250,
                    (self.next_fixed - 1) % 250 + 3
                )
            }
        };
        let serial = self.serial;
        let mut p = self.base(fields);
        p.entry("admin_state_up").or_insert(json!(true));
        p.entry("device_id").or_insert(json!(""));
        p.entry("device_owner").or_insert(json!(""));
        p.entry("security_groups").or_insert(json!([]));
        p.insert(
            "mac_address".into(),
            json!(format!(
                "fa:16:3e:{:02x}:{:02x}:{:02x}",
                (serial >> 16) & 0xff,
                (serial >> 8) & 0xff,
                serial & 0xff
            )),
        );
        p.insert("status".into(), json!("DOWN"));
        if !p.contains_key("fixed_ips") {
            p.insert(
                "fixed_ips".into(),
                match subnet {
                    Some(s) => json!([{ "subnet_id": s, "ip_address": ip }]),
                    None => json!([]),
                },
            );
        }
        self.created("ports", p)
    }

    fn new_security_group(&mut self, fields: Map<String, Json>) -> Result<Json, Answer> {
        let mut g = self.base(fields);
        g.entry("description").or_insert(json!(""));
        let id = g["id"].clone();
        let mut rules = Vec::new();
        for ethertype in ["IPv4", "IPv6"] {
            let rule = json!({ "id": self.uuid(), "security_group_id": id, "direction": "egress",
                "ethertype": ethertype, "protocol": null, "port_range_min": null, "port_range_max": null,
                "remote_ip_prefix": null, "remote_group_id": null, "tenant_id": PROJECT_ID, "project_id": PROJECT_ID });
            self.insert("security-group-rules", rule.clone());
            rules.push(rule);
        }
        g.insert("security_group_rules".into(), json!(rules));
        self.created("security-groups", g)
    }

    fn new_rule(&mut self, fields: Map<String, Json>) -> Result<Json, Answer> {
        let group = self.existing(
            &fields,
            "security_group_id",
            "security-groups",
            "Security group",
        )?;
        match fields.get("direction").and_then(Json::as_str) {
            Some("ingress" | "egress") => {}
            _ => {
                return Err(neutron_fault(
                    400,
                    "HTTPBadRequest",
                    "Invalid input for direction.",
                ));
            }
        }
        let same = |r: &Json| {
            [
                "direction",
                "protocol",
                "port_range_min",
                "port_range_max",
                "remote_ip_prefix",
            ]
            .iter()
            .all(|k| r[*k] == fields.get(*k).cloned().unwrap_or(Json::Null))
                && r["security_group_id"] == group.as_str()
        };
        if let Some(existing) = self.neutron["security-group-rules"]
            .iter()
            .find(|r| same(r))
        {
            let id = existing["id"].as_str().unwrap_or_default().to_string();
            return Err(neutron_fault(
                409,
                "SecurityGroupRuleExists",
                format!("Security group rule already exists. Rule id is {id}."),
            ));
        }
        let mut r = self.base(fields);
        r.remove("name");
        r.entry("ethertype").or_insert(json!("IPv4"));
        for k in [
            "protocol",
            "port_range_min",
            "port_range_max",
            "remote_ip_prefix",
            "remote_group_id",
        ] {
            r.entry(k).or_insert(Json::Null);
        }
        let r = self.created("security-group-rules", r)?;
        if let Some(g) = self.find_mut("security-groups", &group)
            && let Some(list) = g["security_group_rules"].as_array_mut()
        {
            list.push(r.clone());
        }
        Ok(r)
    }

    fn new_floating_ip(&mut self, fields: Map<String, Json>) -> Result<Json, Answer> {
        let net = self.existing(&fields, "floating_network_id", "networks", "Network")?;
        if self
            .find("networks", &net)
            .is_some_and(|n| n["router:external"] != true)
        {
            return Err(neutron_fault(
                400,
                "BadRequest",
                format!("Bad floatingip request: Network {net} is not a valid external network."),
            ));
        }
        self.next_floating += 1;
        let mut f = self.base(fields);
        f.remove("name");
        f.entry("floating_ip_address")
            .or_insert(json!(format!("172.24.4.{}", self.next_floating)));
        f.entry("port_id").or_insert(Json::Null);
        f.entry("fixed_ip_address").or_insert(Json::Null);
        f.insert("status".into(), json!("DOWN"));
        f.insert("router_id".into(), Json::Null);
        self.created("floatingips", f)
    }

    fn update_floating_ip(&mut self, id: &str, fields: Map<String, Json>) -> Answer {
        let port = fields.get("port_id").cloned().unwrap_or(Json::Null);
        let fixed = match &port {
            Json::Null => Json::Null,
            Json::String(p) => match self.find("ports", p) {
                None => return not_found("Port", p),
                Some(port) => fields
                    .get("fixed_ip_address")
                    .cloned()
                    .unwrap_or_else(|| port["fixed_ips"][0]["ip_address"].clone()),
            },
            _ => return neutron_fault(400, "HTTPBadRequest", "Invalid input for port_id."),
        };
        let f = self.find_mut("floatingips", id).expect("checked");
        f["status"] = json!(if port.is_null() { "DOWN" } else { "ACTIVE" });
        f["port_id"] = port;
        f["fixed_ip_address"] = fixed;
        answer(200, json!({ "floatingip": f.clone() }))
    }
}

/// The `{SINGULAR: {…}}` of a create or update.
fn resource_body(body: Option<&Json>, singular: &str) -> Result<Map<String, Json>, Answer> {
    body.and_then(|b| b.get(singular))
        .and_then(Json::as_object)
        .cloned()
        .ok_or_else(|| {
            neutron_fault(
                400,
                "HTTPBadRequest",
                format!("Resource body required: {singular}"),
            )
        })
}

fn not_found(label: &str, id: &str) -> Answer {
    let kind = format!("{}NotFound", label.replace(' ', ""));
    neutron_fault(404, &kind, format!("{label} {id} could not be found."))
}
