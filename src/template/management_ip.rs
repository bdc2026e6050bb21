//! The management IP: the address `%{management_ip}` stands for.
//!
//! On a Cloudify manager it was the manager's address, which agents and containers report to;
//! windlass has no manager, so it is the address of this machine that others reach it at. In
//! order: the `--management-ip` option, the `WINDLASS_MANAGEMENT_IP` environment variable, and
//! the IPv4 address of the interface that holds the default route (the lowest-metric default
//! in `/proc/net/route`, its address from `getifaddrs`). Nothing is sent on the network.
//!
//! This module only resolves; the CLI passes the option, and the plugin puts the result into a
//! `TokenContext`.

use std::ffi::CStr;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// The environment variable read when no option is given.
pub const ENV_VAR: &str = "WINDLASS_MANAGEMENT_IP";

/// A resolved management IP and where it came from (for "using 10.0.0.5 (from eth0)" output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagementIp {
    pub addr: IpAddr,
    pub source: Source,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Option,
    Env,
    DefaultRoute { interface: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Option => write!(f, "--management-ip"),
            Source::Env => write!(f, "{ENV_VAR}"),
            Source::DefaultRoute { interface } => {
                write!(f, "interface {interface}, which holds the default route")
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManagementIpError {
    #[error("{source_name} `{value}` is not an IP address")]
    Invalid { source_name: String, value: String },
    #[error("cannot read the routing table (/proc/net/route): {0}")]
    Routes(std::io::Error),
    #[error("no default route: give the address with --management-ip or {ENV_VAR}")]
    NoDefaultRoute,
    #[error(
        "interface {interface} holds the default route but has no IPv4 address: give the address with --management-ip or {ENV_VAR}"
    )]
    NoAddress { interface: String },
    #[error("cannot list the network interfaces: {0}")]
    Interfaces(std::io::Error),
}

/// Resolves the management IP from the option, else the environment, else the default route.
pub fn resolve_management_ip(option: Option<&str>) -> Result<ManagementIp, ManagementIpError> {
    let env = std::env::var(ENV_VAR).ok();
    resolve_with(option, env.as_deref(), || {
        let routes =
            std::fs::read_to_string("/proc/net/route").map_err(ManagementIpError::Routes)?;
        let interface =
            default_route_interface(&routes).ok_or(ManagementIpError::NoDefaultRoute)?;
        let addr = interface_ipv4(&interface)?.ok_or_else(|| ManagementIpError::NoAddress {
            interface: interface.clone(),
        })?;
        Ok(ManagementIp {
            addr: IpAddr::V4(addr),
            source: Source::DefaultRoute { interface },
        })
    })
}

/// The resolution order, with the machine lookup passed in (so tests can tell which ran).
fn resolve_with(
    option: Option<&str>,
    env: Option<&str>,
    from_route: impl FnOnce() -> Result<ManagementIp, ManagementIpError>,
) -> Result<ManagementIp, ManagementIpError> {
    let given = |value: &str, source: Source| {
        value
            .trim()
            .parse::<IpAddr>()
            .map(|addr| ManagementIp {
                addr,
                source: source.clone(),
            })
            .map_err(|_| ManagementIpError::Invalid {
                source_name: source.to_string(),
                value: value.to_string(),
            })
    };
    match (option, env) {
        (Some(v), _) => given(v, Source::Option),
        (None, Some(v)) if !v.trim().is_empty() => given(v, Source::Env),
        _ => from_route(),
    }
}

/// The interface of the lowest-metric default route that is up, from `/proc/net/route` text.
fn default_route_interface(routes: &str) -> Option<String> {
    const RTF_UP: u32 = 0x1;
    routes
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (iface, destination, flags, metric, mask) = (
                fields.first()?,
                fields.get(1)?,
                fields.get(3)?,
                fields.get(6)?,
                fields.get(7)?,
            );
            let flags = u32::from_str_radix(flags, 16).ok()?;
            let metric: u32 = metric.parse().ok()?;
            let is_default = u32::from_str_radix(destination, 16).ok()? == 0
                && u32::from_str_radix(mask, 16).ok()? == 0;
            (is_default && flags & RTF_UP != 0).then(|| (metric, iface.to_string()))
        })
        .min_by_key(|(metric, _)| *metric)
        .map(|(_, iface)| iface)
}

/// The first IPv4 address of the interface named `name`, from `getifaddrs`.
fn interface_ipv4(name: &str) -> Result<Option<Ipv4Addr>, ManagementIpError> {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return Err(ManagementIpError::Interfaces(
            std::io::Error::last_os_error(),
        ));
    }
    let mut found = None;
    let mut entry = list;
    while !entry.is_null() {
        // SAFETY: `entry` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*entry };
        entry = ifa.ifa_next;
        if ifa.ifa_addr.is_null() || ifa.ifa_name.is_null() {
            continue;
        }
        // SAFETY: ifa_name is a NUL-terminated string owned by the list.
        let ifa_name = unsafe { CStr::from_ptr(ifa.ifa_name) };
        // SAFETY: ifa_addr points to a sockaddr of at least the family field.
        let family = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
        if ifa_name.to_bytes() == name.as_bytes() && family == libc::AF_INET {
            // SAFETY: an AF_INET address is a sockaddr_in.
            let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
            found = Some(Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)));
            break;
        }
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTES: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
wlan0\t00000000\t0100A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0
eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
tun0\t00000000\t00000000\t0002\t0\t0\t1\t00000000\t0\t0\t0
";

    fn never() -> Result<ManagementIp, ManagementIpError> {
        panic!("the default route must not be consulted")
    }

    #[test]
    fn the_option_wins_over_the_environment() {
        let ip = resolve_with(Some("192.0.2.1"), Some("198.51.100.1"), never).unwrap();
        assert_eq!(ip.addr, "192.0.2.1".parse::<IpAddr>().unwrap());
        assert_eq!(ip.source, Source::Option);
        let ip = resolve_with(None, Some(" 2001:db8::1 "), never).unwrap();
        assert_eq!(ip.addr, "2001:db8::1".parse::<IpAddr>().unwrap());
        assert_eq!(ip.source, Source::Env);
    }

    #[test]
    fn an_invalid_address_names_where_it_came_from() {
        let err = resolve_with(Some("manager.local"), None, never).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--management-ip `manager.local` is not an IP address"
        );
        let err = resolve_with(None, Some("10.0.0"), never).unwrap_err();
        assert!(err.to_string().starts_with(ENV_VAR), "{err}");
    }

    #[test]
    fn without_option_or_environment_the_route_decides() {
        let ip = resolve_with(None, Some(""), || {
            Ok(ManagementIp {
                addr: IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9)),
                source: Source::DefaultRoute {
                    interface: "eth0".into(),
                },
            })
        })
        .unwrap();
        assert_eq!(ip.addr.to_string(), "203.0.113.9");
    }

    #[test]
    fn the_lowest_metric_default_route_that_is_up() {
        assert_eq!(default_route_interface(ROUTES).as_deref(), Some("eth0"));
        let no_default = ROUTES
            .lines()
            .take(2)
            .chain(std::iter::once(ROUTES.lines().nth(4).unwrap()))
            .collect::<Vec<_>>()
            .join("\n");
        // Only a network route and a default route that is down.
        assert_eq!(default_route_interface(&no_default), None);
        assert_eq!(default_route_interface(""), None);
    }

    #[test]
    fn the_loopback_interface_has_its_address() {
        assert_eq!(interface_ipv4("lo").unwrap(), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(interface_ipv4("no-such-interface0").unwrap(), None);
    }
}
