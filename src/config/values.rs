//! How each kind of value is read from TOML. A value of the wrong kind is
//! refused through serde's `invalid_type`/`invalid_value` with what was
//! expected in words and an example; the error mapping in `source.rs` puts
//! the key, the line and the value as written in front of it.

use std::fmt;
use std::marker::PhantomData;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer, MapAccess, Unexpected, Visitor};

use super::Route;

const DURATION: &str = "a duration such as \"10s\" (a whole number, then ms, s, m or h)";
const DURATION_OR_OFF: &str =
    "a duration such as \"30s\" (a whole number, then ms, s, m or h), or \"off\"";
const LISTEN: &str = "an IP address and port such as \"127.0.0.1:5280\"";
const DNS_SERVER: &str = "an IP address and port such as \"127.0.0.1:53\"";
const PROXY: &str = "an IP address such as \"127.0.0.1\"";
const COUNT: &str = "a whole number written as digits, such as 4";
const BYTES: &str = "a number of bytes written as digits, such as 65536";
const ROUTE: &str = "a host and port such as \"10.0.0.5:5222\", or a table such as { address = \"10.0.0.5:5222\", certificate = \"/etc/switchboard/example.org.pem\" }";

/// Durations are strings with a unit: "250ms", "10s", "2m", "1h".
pub(super) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok()?;
    match unit {
        "ms" => Some(Duration::from_millis(n)),
        "s" => Some(Duration::from_secs(n)),
        "m" => n.checked_mul(60).map(Duration::from_secs),
        "h" => n.checked_mul(3600).map(Duration::from_secs),
        _ => None,
    }
}

/// A duration as it would be written in the file, quotes included.
pub(super) fn show_duration(duration: Duration) -> String {
    if duration.subsec_nanos() == 0 {
        format!("\"{}s\"", duration.as_secs())
    } else {
        format!("\"{}ms\"", duration.as_millis())
    }
}

/// A string that `parse` turns into a value; anything else is refused with
/// `expecting`.
struct Parsed<T> {
    expecting: &'static str,
    parse: fn(&str) -> Option<T>,
}

impl<T> Visitor<'_> for Parsed<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        (self.parse)(text).ok_or_else(|| E::invalid_value(Unexpected::Str(text), &self))
    }
}

pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_str(Parsed {
        expecting: DURATION,
        parse: parse_duration,
    })
}

/// A duration, or "off" for none.
pub(super) fn optional_duration<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Duration>, D::Error> {
    d.deserialize_str(Parsed {
        expecting: DURATION_OR_OFF,
        parse: |text| match text {
            "off" => Some(None),
            _ => parse_duration(text).map(Some),
        },
    })
}

pub(super) fn listen<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    d.deserialize_str(Parsed {
        expecting: LISTEN,
        parse: |text| text.parse().ok(),
    })
}

/// One resolver address; its own type so that each element of the list is
/// refused with its own span, hence its own line.
struct DnsServer(SocketAddr);

impl<'de> Deserialize<'de> for DnsServer {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(Parsed {
            expecting: DNS_SERVER,
            parse: |text| text.parse().ok().map(DnsServer),
        })
    }
}

/// One proxy address, its own type for the same reason.
struct Proxy(IpAddr);

impl<'de> Deserialize<'de> for Proxy {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(Parsed {
            expecting: PROXY,
            parse: |text| text.parse().ok().map(Proxy),
        })
    }
}

pub(super) fn proxies<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpAddr>, D::Error> {
    let proxies = Vec::<Proxy>::deserialize(d)?;
    Ok(proxies.into_iter().map(|proxy| proxy.0).collect())
}

pub(super) fn dns_servers<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<SocketAddr>, D::Error> {
    let servers = Vec::<DnsServer>::deserialize(d)?;
    Ok(servers.into_iter().map(|server| server.0).collect())
}

/// A route is a string, or a table of the keys below. Both stay strings
/// here; `Config::validate` checks the address, start-up reads the file.
impl<'de> Deserialize<'de> for Route {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        /// The table form; its unknown keys are refused by name.
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Table {
            #[serde(default)]
            address: String,
            #[serde(default)]
            certificate: PathBuf,
        }

        struct RouteVisitor;

        impl<'de> Visitor<'de> for RouteVisitor {
            type Value = Route;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(ROUTE)
            }

            fn visit_str<E: de::Error>(self, address: &str) -> Result<Route, E> {
                Ok(Route::from(address.to_string()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Route, A::Error> {
                let table = Table::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Route {
                    address: table.address,
                    certificate: table.certificate,
                })
            }
        }

        d.deserialize_any(RouteVisitor)
    }
}

/// A non-negative TOML integer that fits `T`.
struct WholeNumber<T> {
    expecting: &'static str,
    into: PhantomData<T>,
}

impl<T: TryFrom<u64>> Visitor<'_> for WholeNumber<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<T, E> {
        T::try_from(n).map_err(|_| E::invalid_value(Unexpected::Unsigned(n), &self))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<T, E> {
        match u64::try_from(n) {
            Ok(n) => self.visit_u64(n),
            Err(_) => Err(E::invalid_value(Unexpected::Signed(n), &self)),
        }
    }
}

/// A count of things (connections, headers, tries).
pub(super) fn count<'de, D: Deserializer<'de>, T: TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    d.deserialize_any(WholeNumber {
        expecting: COUNT,
        into: PhantomData,
    })
}

/// A size in bytes.
pub(super) fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    d.deserialize_any(WholeNumber {
        expecting: BYTES,
        into: PhantomData,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("s"), None);
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("1d"), None);
    }

    #[test]
    fn durations_are_shown_as_they_are_written() {
        assert_eq!(show_duration(Duration::from_secs(160)), "\"160s\"");
        assert_eq!(show_duration(Duration::from_millis(250)), "\"250ms\"");
    }
}
