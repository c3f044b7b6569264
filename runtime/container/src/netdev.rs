//! `linux.netDevices` (runtime-spec 1.3): network interfaces of the
//! runtime's network namespace moved into the container's new one (and
//! renamed when `name` is set), before the container's process runs. When
//! the container's network namespace goes away the kernel destroys virtual
//! devices moved there (a veth takes its peer along) and returns physical
//! ones to the initial namespace.
//!
//! One rtnetlink request per device (RTM_NEWLINK with IFLA_NET_NS_FD and
//! IFLA_IFNAME), written here: the rtnetlink crates are async (tokio) and
//! the runtime is single-threaded, and one message does not need them.

use crate::error::{Context, Error, Result};
use oci_spec::runtime::Spec;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const RTM_NEWLINK: u16 = 16;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
/// IFNAMSIZ - 1.
const MAX_NAME: usize = 15;

/// The devices to move: (name on the host, name in the container).
pub fn planned(spec: &Spec) -> Vec<(String, String)> {
    let mut devices: Vec<(String, String)> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.net_devices().as_ref())
        .into_iter()
        .flatten()
        .map(|(host, d)| {
            let name = d.name().clone().filter(|n| !n.is_empty());
            (host.clone(), name.unwrap_or_else(|| host.clone()))
        })
        .collect();
    devices.sort();
    devices
}

fn check_name(field: &str, name: &str) -> Result<()> {
    if name.is_empty()
        || name.len() > MAX_NAME
        || name == "."
        || name == ".."
        || name
            .chars()
            .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return Err(Error::msg(format!(
            "{field} {name:?} is not an interface name (1-{MAX_NAME} bytes, no '/', ':' or spaces)"
        )));
    }
    Ok(())
}

/// Check the config's devices (at create): valid names, and a new network
/// namespace to move them to.
pub fn validate(spec: &Spec, new_netns: bool) -> Result<()> {
    let devices = planned(spec);
    if devices.is_empty() {
        return Ok(());
    }
    if !new_netns {
        return Err(Error::msg(
            "linux.netDevices needs a new network namespace (add {\"type\": \"network\"} to linux.namespaces)",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (host, name) in &devices {
        check_name("linux.netDevices key", host)?;
        check_name(&format!("linux.netDevices[{host:?}].name"), name)?;
        if !seen.insert(name) {
            return Err(Error::msg(format!(
                "linux.netDevices: two devices would be named {name:?} in the container"
            )));
        }
    }
    Ok(())
}

fn attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len().next_multiple_of(4), 0);
}

/// RTM_NEWLINK for interface `index`: into the namespace `netns`, named
/// `name` there.
fn move_request(index: i32, netns: i32, name: &str, seq: u32) -> Vec<u8> {
    let mut msg = vec![0u8; 16];
    // struct ifinfomsg: family, pad, type, index, flags, change.
    msg.extend_from_slice(&[libc::AF_UNSPEC as u8, 0, 0, 0]);
    msg.extend_from_slice(&index.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    attr(&mut msg, IFLA_NET_NS_FD, &(netns as u32).to_ne_bytes());
    let mut cname = name.as_bytes().to_vec();
    cname.push(0);
    attr(&mut msg, IFLA_IFNAME, &cname);
    let len = msg.len() as u32;
    msg[0..4].copy_from_slice(&len.to_ne_bytes());
    msg[4..6].copy_from_slice(&RTM_NEWLINK.to_ne_bytes());
    msg[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg[8..12].copy_from_slice(&seq.to_ne_bytes());
    msg
}

fn netlink_socket() -> Result<OwnedFd> {
    // SAFETY: socket(2) returns a new fd or -1.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "opening a netlink socket");
    }
    // SAFETY: a new fd we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Send one request and read its acknowledgement (0 or -errno).
fn request(sock: &OwnedFd, msg: &[u8]) -> Result<i32> {
    // SAFETY: send/recv on our socket with buffers of the given sizes.
    let sent = unsafe { libc::send(sock.as_raw_fd(), msg.as_ptr().cast(), msg.len(), 0) };
    if sent < 0 {
        return Err(std::io::Error::last_os_error()).ctx(|| "sending to netlink");
    }
    let mut buf = [0u8; 4096];
    // SAFETY: as above.
    let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 20 {
        return Err(Error::msg("netlink: no acknowledgement"));
    }
    let kind = u16::from_ne_bytes([buf[4], buf[5]]);
    if kind != NLMSG_ERROR {
        return Err(Error::msg(format!("netlink: unexpected reply type {kind}")));
    }
    Ok(i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]))
}

/// Move the config's devices into the network namespace of `pid`.
pub fn move_into(spec: &Spec, pid: i32) -> Result<()> {
    let devices = planned(spec);
    if devices.is_empty() {
        return Ok(());
    }
    let netns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .ctx(|| "opening the container's network namespace")?;
    let sock = netlink_socket()?;
    for (seq, (host, name)) in devices.iter().enumerate() {
        let cname = std::ffi::CString::new(host.as_str())
            .map_err(|_| Error::msg("NUL in an interface name"))?;
        // SAFETY: if_nametoindex reads a NUL-terminated name.
        let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
        if index == 0 {
            return Err(Error::msg(format!(
                "linux.netDevices: no interface {host:?} in the runtime's network namespace"
            )));
        }
        let msg = move_request(index as i32, netns.as_raw_fd(), name, seq as u32 + 1);
        match request(&sock, &msg)? {
            0 => crate::debug!("create: moved interface {host} into the container as {name}"),
            e => {
                return Err(Error::msg(format!(
                    "linux.netDevices: moving {host:?} into the container as {name:?}: {}",
                    std::io::Error::from_raw_os_error(-e)
                )))
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> Spec {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn plan_and_checks() {
        let s = spec(
            r#"{"ociVersion":"1.2.0","linux":{"netDevices":{"veth1":{"name":"eth0"},"dummy0":{}}}}"#,
        );
        assert_eq!(
            planned(&s),
            [
                ("dummy0".to_string(), "dummy0".to_string()),
                ("veth1".to_string(), "eth0".to_string())
            ]
        );
        assert!(validate(&s, true).is_ok());
        let err = validate(&s, false).unwrap_err().to_string();
        assert!(err.contains("new network namespace"), "{err}");
        let bad = spec(r#"{"ociVersion":"1.2.0","linux":{"netDevices":{"a/b":{}}}}"#);
        assert!(validate(&bad, true).is_err());
        let twice = spec(
            r#"{"ociVersion":"1.2.0","linux":{"netDevices":{"a":{"name":"x"},"b":{"name":"x"}}}}"#,
        );
        assert!(validate(&twice, true)
            .unwrap_err()
            .to_string()
            .contains("two devices"));
    }

    #[test]
    fn request_layout() {
        let msg = move_request(7, 9, "eth0", 1);
        // header 16 + ifinfomsg 16 + NET_NS_FD 8 + IFNAME "eth0\0" padded 12.
        assert_eq!(msg.len(), 52);
        assert_eq!(u32::from_ne_bytes(msg[0..4].try_into().unwrap()), 52);
        assert_eq!(i32::from_ne_bytes(msg[20..24].try_into().unwrap()), 7);
        assert_eq!(&msg[44..49], b"eth0\0");
    }
}
