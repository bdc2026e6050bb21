//! Keystone v3: tokens and the service catalog.
//!
//! [`authenticate`] posts `POST {auth_url}/auth/tokens` with the password or application
//! credential method, takes the token from the `X-Subject-Token` header of the 201 answer and
//! the catalog and `expires_at` from its body. [`Token::endpoint`] picks a service's URL by
//! service type, region and interface (public unless configured). Tokens are kept per
//! configuration for the life of the process ([`cached`], [`keep`], [`forget`]) and reused
//! until a minute before they expire; a 401 from a service makes the caller forget the token
//! and authenticate once more.
//!
//! Nothing here returns the password, the secret or the token in an error: Keystone's refusals
//! are quoted from its `error.message`, which never holds them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value as Json, json};

use super::api::{OsError, Session};
use super::config::{Auth, ClientConfig, Domain, Project};

/// A token is not used within this margin of its expiry.
const MARGIN: Duration = Duration::from_secs(60);

/// One endpoint of the catalog.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub service_type: String,
    pub interface: String,
    pub region: Option<String>,
    pub url: String,
}

/// An issued token with its catalog. `Debug` does not show the token.
pub struct Token {
    value: String,
    pub expires: Option<SystemTime>,
    pub catalog: Vec<Endpoint>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("expires", &self.expires)
            .field("endpoints", &self.catalog.len())
            .finish_non_exhaustive()
    }
}

impl Token {
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether the token can still be used (expiry unknown counts as usable: the service's
    /// 401 says otherwise).
    pub fn fresh(&self, now: SystemTime) -> bool {
        self.expires.is_none_or(|e| now + MARGIN < e)
    }

    /// The URL of `service_type` in `region` (any region when `None`) for `interface`.
    pub fn endpoint(
        &self,
        service_type: &str,
        region: Option<&str>,
        interface: &str,
    ) -> Result<String, OsError> {
        self.catalog
            .iter()
            .find(|e| {
                e.service_type == service_type
                    && e.interface == interface
                    && region.is_none_or(|r| e.region.as_deref() == Some(r))
            })
            .map(|e| e.url.trim_end_matches('/').to_string())
            .ok_or_else(|| OsError::Catalog {
                service: service_type.to_string(),
                region: region.unwrap_or("any").to_string(),
                interface: interface.to_string(),
            })
    }
}

/// The `auth` body of `POST /v3/auth/tokens` for a configuration.
pub fn request_body(config: &ClientConfig) -> Json {
    fn domain(d: &Domain) -> Json {
        match d {
            Domain::Id(id) => json!({ "id": id }),
            Domain::Name(name) => json!({ "name": name }),
        }
    }
    match &config.auth {
        Auth::Password {
            username,
            password,
            user_domain,
            project,
        } => {
            let project = match project {
                Project::Id(id) => json!({ "id": id }),
                Project::Name { name, domain: d } => json!({ "name": name, "domain": domain(d) }),
            };
            json!({ "auth": {
                "identity": { "methods": ["password"], "password": { "user": {
                    "name": username, "domain": domain(user_domain), "password": password } } },
                "scope": { "project": project } } })
        }
        Auth::ApplicationCredential {
            id,
            name,
            username,
            user_domain,
            secret,
        } => {
            let mut credential = serde_json::Map::new();
            if let Some(id) = id {
                credential.insert("id".into(), json!(id));
            } else {
                credential.insert("name".into(), json!(name));
                credential.insert(
                    "user".into(),
                    json!({ "name": username, "domain": domain(user_domain) }),
                );
            }
            credential.insert("secret".into(), json!(secret));
            json!({ "auth": { "identity": {
                "methods": ["application_credential"],
                "application_credential": credential } } })
        }
    }
}

/// Ask Keystone for a token.
pub async fn authenticate(session: &Session) -> Result<Token, OsError> {
    let url = format!("{}/auth/tokens", session.config.auth_url);
    let body = request_body(&session.config);
    let (status, headers, reply) = session.send_unauthenticated(&url, &body).await?;
    if status != 201 && status != 200 {
        return Err(OsError::Auth {
            url: session.config.auth_url.clone(),
            code: status,
            message: session.secrets.mask(&super::api::message_of(&reply)),
        });
    }
    let value = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .ok_or_else(|| OsError::Auth {
            url: session.config.auth_url.clone(),
            code: status,
            message: "the answer has no X-Subject-Token header".into(),
        })?;
    parse_token(value, &reply)
}

/// The token body's catalog and expiry.
pub fn parse_token(value: String, body: &Json) -> Result<Token, OsError> {
    let token = body.get("token").ok_or_else(|| OsError::Protocol {
        what: "Keystone's token".into(),
        message: "no `token` in the answer".into(),
    })?;
    let expires = token
        .get("expires_at")
        .and_then(Json::as_str)
        .and_then(parse_time);
    let mut catalog = Vec::new();
    for service in token
        .get("catalog")
        .and_then(Json::as_array)
        .into_iter()
        .flatten()
    {
        let Some(service_type) = service.get("type").and_then(Json::as_str) else {
            continue;
        };
        for e in service
            .get("endpoints")
            .and_then(Json::as_array)
            .into_iter()
            .flatten()
        {
            let (Some(interface), Some(url)) = (
                e.get("interface").and_then(Json::as_str),
                e.get("url").and_then(Json::as_str),
            ) else {
                continue;
            };
            let region = e
                .get("region_id")
                .or_else(|| e.get("region"))
                .and_then(Json::as_str)
                .map(str::to_string);
            catalog.push(Endpoint {
                service_type: service_type.to_string(),
                interface: interface.to_string(),
                region,
                url: url.to_string(),
            });
        }
    }
    Ok(Token {
        value,
        expires,
        catalog,
    })
}

/// An ISO 8601 UTC time as Keystone writes it (`2015-11-09T01:42:57.527363Z`, or with an
/// offset `+00:00`).
pub fn parse_time(text: &str) -> Option<SystemTime> {
    let (date, time) = text.split_once('T')?;
    let mut d = date.split('-');
    let (y, m, day): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    let (clock, offset) = if let Some(c) = time.strip_suffix('Z') {
        (c, 0)
    } else if let Some(i) = time.rfind(['+', '-']) {
        let (c, o) = time.split_at(i);
        let sign = if o.starts_with('-') { -1 } else { 1 };
        let (oh, om) = o[1..].split_once(':').unwrap_or((&o[1..], "0"));
        (
            c,
            sign * (oh.parse::<i64>().ok()? * 3600 + om.parse::<i64>().ok()? * 60),
        )
    } else {
        (time, 0)
    };
    let mut c = clock.split(':');
    let (h, min): (i64, i64) = (c.next()?.parse().ok()?, c.next()?.parse().ok()?);
    let s: f64 = c.next().unwrap_or("0").parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) {
        return None;
    }
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + min * 60 - offset;
    let secs = u64::try_from(secs).ok()?;
    Some(
        UNIX_EPOCH
            + Duration::from_secs(secs)
            + Duration::from_secs_f64(s.fract().max(0.0))
            + Duration::from_secs(s.trunc() as u64),
    )
}

/// Held while a token is asked for, so that concurrent operations share one.
pub fn authenticating() -> &'static tokio::sync::Mutex<()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    &LOCK
}

type Cache = Mutex<HashMap<ClientConfig, Arc<Token>>>;

fn cache() -> &'static Cache {
    static TOKENS: OnceLock<Cache> = OnceLock::new();
    TOKENS.get_or_init(Default::default)
}

/// The kept token of a configuration, if it is still fresh.
pub fn cached(config: &ClientConfig) -> Option<Arc<Token>> {
    let tokens = cache().lock().unwrap_or_else(|p| p.into_inner());
    tokens
        .get(config)
        .filter(|t| t.fresh(SystemTime::now()))
        .cloned()
}

pub fn keep(config: &ClientConfig, token: Arc<Token>) {
    cache()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(config.clone(), token);
}

/// Drop a token the cloud refused (only that one: another task may have renewed it already).
pub fn forget(config: &ClientConfig, token: &Arc<Token>) {
    let mut tokens = cache().lock().unwrap_or_else(|p| p.into_inner());
    if tokens.get(config).is_some_and(|t| Arc::ptr_eq(t, token)) {
        tokens.remove(config);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_as_keystone_writes_them() {
        let t = parse_time("2015-11-09T01:42:57.527363Z").unwrap();
        let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs();
        assert_eq!(secs, 1_447_033_377);
        let o = parse_time("2015-11-09T03:42:57+02:00").unwrap();
        assert_eq!(
            o.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_447_033_377
        );
        assert!(parse_time("yesterday").is_none());
    }

    #[test]
    fn endpoints_by_type_region_and_interface() {
        let body = json!({"token": {"expires_at": "2999-01-01T00:00:00Z", "catalog": [
            {"type": "compute", "endpoints": [
                {"interface": "internal", "region_id": "R1", "url": "http://i/compute/v2.1"},
                {"interface": "public", "region_id": "R2", "url": "http://p2/compute/v2.1/"},
                {"interface": "public", "region_id": "R1", "url": "http://p1/compute/v2.1"}]}]}});
        let t = parse_token("tok".into(), &body).unwrap();
        assert_eq!(
            t.endpoint("compute", Some("R1"), "public").unwrap(),
            "http://p1/compute/v2.1"
        );
        assert_eq!(
            t.endpoint("compute", Some("R2"), "public").unwrap(),
            "http://p2/compute/v2.1"
        );
        assert_eq!(
            t.endpoint("compute", Some("R1"), "internal").unwrap(),
            "http://i/compute/v2.1"
        );
        assert!(t.endpoint("network", None, "public").is_err());
        assert!(t.fresh(SystemTime::now()));
        assert!(!format!("{t:?}").contains("tok"));
    }
}
