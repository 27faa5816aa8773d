//! XMPP stream error conditions (RFC 6120 §4.9.3), typed: what the framer
//! refuses, what a server sends, and what switchboard tells a WebSocket
//! client are all one of these, never a free string.

use std::fmt;

/// RFC 6120 §4.9.3, every defined condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Condition {
    BadFormat,
    BadNamespacePrefix,
    Conflict,
    ConnectionTimeout,
    HostGone,
    HostUnknown,
    ImproperAddressing,
    InternalServerError,
    InvalidFrom,
    InvalidNamespace,
    InvalidXml,
    NotAuthorized,
    NotWellFormed,
    PolicyViolation,
    RemoteConnectionFailed,
    Reset,
    ResourceConstraint,
    RestrictedXml,
    SeeOtherHost,
    SystemShutdown,
    UndefinedCondition,
    UnsupportedEncoding,
    UnsupportedFeature,
    UnsupportedStanzaType,
    UnsupportedVersion,
}

impl Condition {
    const ALL: [Condition; 25] = [
        Condition::BadFormat,
        Condition::BadNamespacePrefix,
        Condition::Conflict,
        Condition::ConnectionTimeout,
        Condition::HostGone,
        Condition::HostUnknown,
        Condition::ImproperAddressing,
        Condition::InternalServerError,
        Condition::InvalidFrom,
        Condition::InvalidNamespace,
        Condition::InvalidXml,
        Condition::NotAuthorized,
        Condition::NotWellFormed,
        Condition::PolicyViolation,
        Condition::RemoteConnectionFailed,
        Condition::Reset,
        Condition::ResourceConstraint,
        Condition::RestrictedXml,
        Condition::SeeOtherHost,
        Condition::SystemShutdown,
        Condition::UndefinedCondition,
        Condition::UnsupportedEncoding,
        Condition::UnsupportedFeature,
        Condition::UnsupportedStanzaType,
        Condition::UnsupportedVersion,
    ];

    /// The element name of the condition.
    pub fn as_str(self) -> &'static str {
        match self {
            Condition::BadFormat => "bad-format",
            Condition::BadNamespacePrefix => "bad-namespace-prefix",
            Condition::Conflict => "conflict",
            Condition::ConnectionTimeout => "connection-timeout",
            Condition::HostGone => "host-gone",
            Condition::HostUnknown => "host-unknown",
            Condition::ImproperAddressing => "improper-addressing",
            Condition::InternalServerError => "internal-server-error",
            Condition::InvalidFrom => "invalid-from",
            Condition::InvalidNamespace => "invalid-namespace",
            Condition::InvalidXml => "invalid-xml",
            Condition::NotAuthorized => "not-authorized",
            Condition::NotWellFormed => "not-well-formed",
            Condition::PolicyViolation => "policy-violation",
            Condition::RemoteConnectionFailed => "remote-connection-failed",
            Condition::Reset => "reset",
            Condition::ResourceConstraint => "resource-constraint",
            Condition::RestrictedXml => "restricted-xml",
            Condition::SeeOtherHost => "see-other-host",
            Condition::SystemShutdown => "system-shutdown",
            Condition::UndefinedCondition => "undefined-condition",
            Condition::UnsupportedEncoding => "unsupported-encoding",
            Condition::UnsupportedFeature => "unsupported-feature",
            Condition::UnsupportedStanzaType => "unsupported-stanza-type",
            Condition::UnsupportedVersion => "unsupported-version",
        }
    }

    /// The condition an element name stands for; anything else a server
    /// sends is `undefined-condition` (§4.9.3.21).
    pub fn from_name(name: &str) -> Condition {
        Condition::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
            .unwrap_or(Condition::UndefinedCondition)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_undefined() {
        for condition in Condition::ALL {
            assert_eq!(Condition::from_name(condition.as_str()), condition);
        }
        assert_eq!(
            Condition::from_name("no-such-condition"),
            Condition::UndefinedCondition
        );
    }
}
