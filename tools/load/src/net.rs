//! Sockets and targets: endpoint URLs, the loopback-only rule, nonblocking
//! connects from chosen source addresses, and the open-files limit.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{FromRawFd, IntoRawFd};

/// A place to connect to, from a `ws://`, `http://` URL or a bare address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    /// `host:port` as written, for the `Host` header.
    pub host: String,
    /// Request path, `/` when the URL has none.
    pub path: String,
}

impl Endpoint {
    /// Parse `scheme://host:port/path` with the given scheme.
    pub fn from_url(url: &str, scheme: &str, allow_remote: bool) -> Result<Endpoint, String> {
        let rest = url
            .strip_prefix(scheme)
            .and_then(|r| r.strip_prefix("://"))
            .ok_or_else(|| format!("{url}: expected a {scheme}:// URL"))?;
        let (host, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let default_port = if scheme == "ws" || scheme == "http" {
            80
        } else {
            443
        };
        let addr = resolve(host, default_port, allow_remote)?;
        Ok(Endpoint {
            addr,
            host: host.to_string(),
            path: path.to_string(),
        })
    }

    /// A bare `host:port`.
    pub fn from_addr(text: &str, allow_remote: bool) -> Result<Endpoint, String> {
        let addr = resolve(text, 5222, allow_remote)?;
        Ok(Endpoint {
            addr,
            host: text.to_string(),
            path: "/".into(),
        })
    }
}

/// Resolve `host[:port]`; refuse anything but loopback unless allowed.
fn resolve(host: &str, default_port: u16, allow_remote: bool) -> Result<SocketAddr, String> {
    let with_port = if host.rsplit_once(':').is_some_and(|(h, p)| {
        !h.is_empty() && !h.ends_with(':') && p.chars().all(|c| c.is_ascii_digit())
    }) {
        host.to_string()
    } else {
        format!("{host}:{default_port}")
    };
    let addr = with_port
        .to_socket_addrs()
        .map_err(|e| format!("{host}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}: no address"))?;
    if !allow_remote && !addr.ip().is_loopback() {
        return Err(format!(
            "{host} is not a loopback address; pass --allow-remote to load a remote server"
        ));
    }
    Ok(addr)
}

/// Start a nonblocking connect to `to`, bound first to `from` when given.
/// With a source address the kernel still picks the port at connect time
/// (`IP_BIND_ADDRESS_NO_PORT`), so each source address has a whole
/// ephemeral range per destination.
pub fn connect(to: SocketAddr, from: Option<IpAddr>) -> io::Result<mio::net::TcpStream> {
    let Some(from) = from else {
        let stream = mio::net::TcpStream::connect(to)?;
        stream.set_nodelay(true)?;
        return Ok(stream);
    };
    let family = match to {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain socket calls on a descriptor this function owns; it is
    // wrapped in an owning std type before any early return.
    unsafe {
        let fd = libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        );
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let stream = std::net::TcpStream::from_raw_fd(fd);
        let one: libc::c_int = 1;
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        let (storage, len) = sockaddr(SocketAddr::new(from, 0));
        if libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len) != 0 {
            return Err(io::Error::last_os_error());
        }
        let (storage, len) = sockaddr(to);
        if libc::connect(fd, (&storage as *const libc::sockaddr_storage).cast(), len) != 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(err);
            }
        }
        let stream = mio::net::TcpStream::from_raw_fd(stream.into_raw_fd());
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Raise the open-files soft limit as far as allowed (the hard limit, or
/// beyond it when running as root) and return the limit now in force.
pub fn raise_fd_limit(wanted: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if wanted > lim.rlim_max {
            let more = libc::rlimit {
                rlim_cur: wanted,
                rlim_max: wanted,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &more) == 0 {
                return wanted;
            }
        }
        let target = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &target) == 0 {
            lim.rlim_max
        } else {
            lim.rlim_cur
        }
    }
}

/// Classify a socket error for the report.
pub fn error_kind(err: &io::Error) -> &'static str {
    match err.kind() {
        io::ErrorKind::ConnectionRefused => "connect_refused",
        io::ErrorKind::ConnectionReset => "connection_reset",
        io::ErrorKind::BrokenPipe => "broken_pipe",
        io::ErrorKind::AddrNotAvailable => "no_local_port",
        io::ErrorKind::TimedOut => "connect_timeout",
        _ if err.raw_os_error() == Some(libc::EMFILE)
            || err.raw_os_error() == Some(libc::ENFILE) =>
        {
            "fd_limit"
        }
        _ => "io_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_into_address_host_and_path() {
        let e = Endpoint::from_url("ws://127.0.0.1:17280/xmpp-websocket", "ws", false).unwrap();
        assert_eq!(e.addr, "127.0.0.1:17280".parse().unwrap());
        assert_eq!(e.host, "127.0.0.1:17280");
        assert_eq!(e.path, "/xmpp-websocket");
        let e = Endpoint::from_url("http://localhost:17280", "http", false).unwrap();
        assert!(e.addr.ip().is_loopback());
        assert_eq!(e.path, "/");
        assert!(Endpoint::from_url("http://127.0.0.1:1/x", "ws", false).is_err());
    }

    #[test]
    fn remote_targets_need_allow_remote() {
        let err = Endpoint::from_addr("192.0.2.1:5222", false).unwrap_err();
        assert!(err.contains("--allow-remote"), "{err}");
        assert!(Endpoint::from_addr("192.0.2.1:5222", true).is_ok());
        assert!(Endpoint::from_addr("[::1]:5222", false).is_ok());
    }
}
