//! The host's view of DNS: the servers of /etc/resolv.conf, read once at
//! start-up.

use std::net::{IpAddr, SocketAddr};

use switchboard_core::dns::Error;

const RESOLV_CONF: &str = "/etc/resolv.conf";
const DNS_PORT: u16 = 53;

/// The `nameserver` entries of /etc/resolv.conf on port 53 (resolv.conf(5));
/// with none listed, the local host, as glibc does.
pub fn servers() -> Result<Vec<SocketAddr>, Error> {
    let bytes =
        std::fs::read(RESOLV_CONF).map_err(|e| Error::System(format!("{RESOLV_CONF}: {e}")))?;
    parse_servers(&bytes)
}

fn parse_servers(bytes: &[u8]) -> Result<Vec<SocketAddr>, Error> {
    let config = resolv_conf::Config::parse(bytes).map_err(|e| Error::System(e.to_string()))?;
    Ok(config
        .get_nameservers_or_local()
        .iter()
        .map(|ip| SocketAddr::new(IpAddr::from(ip), DNS_PORT))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_are_read_in_order_on_port_53() {
        let conf = b"# comment\nsearch example.com\nnameserver 10.0.0.1\nnameserver 2001:db8::1\noptions timeout:1\n";
        let servers = parse_servers(conf).unwrap();
        assert_eq!(
            servers,
            vec![
                "10.0.0.1:53".parse().unwrap(),
                "[2001:db8::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn no_nameserver_means_the_local_host() {
        let servers = parse_servers(b"search example.com\n").unwrap();
        assert_eq!(
            servers,
            vec!["127.0.0.1:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
    }

    #[test]
    fn malformed_file_is_an_error() {
        let err = parse_servers(b"nameserver not-an-ip\n").unwrap_err();
        assert!(matches!(err, Error::System(_)));
    }
}
