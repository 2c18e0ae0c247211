//! MQTT 5 reason codes (spec 2.4), and their MQTT 3.1.1 equivalents.
//!
//! One enum serves every packet: the gateway speaks in MQTT 5 codes and the encoder maps them
//! down for 3.1.1 clients ([`ReasonCode::v4_connack_code`], [`ReasonCode::v4_suback_code`]).
//! Which codes a client may send in which packet is checked on decode.

/// An MQTT 5 reason code. Where the spec gives one value several names (0x00 is "Success",
/// "Normal disconnection" and "Granted QoS 0"), the variant is named after the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum ReasonCode {
    /// Also "Normal disconnection" (DISCONNECT) and "Granted QoS 0" (SUBACK).
    Success = 0x00,
    GrantedQoS1 = 0x01,
    GrantedQoS2 = 0x02,
    DisconnectWithWillMessage = 0x04,
    NoMatchingSubscribers = 0x10,
    NoSubscriptionExisted = 0x11,
    ContinueAuthentication = 0x18,
    ReAuthenticate = 0x19,
    UnspecifiedError = 0x80,
    MalformedPacket = 0x81,
    ProtocolError = 0x82,
    ImplementationSpecificError = 0x83,
    UnsupportedProtocolVersion = 0x84,
    ClientIdentifierNotValid = 0x85,
    BadUserNameOrPassword = 0x86,
    NotAuthorized = 0x87,
    ServerUnavailable = 0x88,
    ServerBusy = 0x89,
    Banned = 0x8A,
    ServerShuttingDown = 0x8B,
    BadAuthenticationMethod = 0x8C,
    KeepAliveTimeout = 0x8D,
    SessionTakenOver = 0x8E,
    TopicFilterInvalid = 0x8F,
    TopicNameInvalid = 0x90,
    PacketIdentifierInUse = 0x91,
    PacketIdentifierNotFound = 0x92,
    ReceiveMaximumExceeded = 0x93,
    TopicAliasInvalid = 0x94,
    PacketTooLarge = 0x95,
    MessageRateTooHigh = 0x96,
    QuotaExceeded = 0x97,
    AdministrativeAction = 0x98,
    PayloadFormatInvalid = 0x99,
    RetainNotSupported = 0x9A,
    QoSNotSupported = 0x9B,
    UseAnotherServer = 0x9C,
    ServerMoved = 0x9D,
    SharedSubscriptionsNotSupported = 0x9E,
    ConnectionRateExceeded = 0x9F,
    MaximumConnectTime = 0xA0,
    SubscriptionIdentifiersNotSupported = 0xA1,
    WildcardSubscriptionsNotSupported = 0xA2,
}

use ReasonCode::*;

/// Every code, for decoding and for tests.
pub(crate) const ALL: [ReasonCode; 43] = [
    Success,
    GrantedQoS1,
    GrantedQoS2,
    DisconnectWithWillMessage,
    NoMatchingSubscribers,
    NoSubscriptionExisted,
    ContinueAuthentication,
    ReAuthenticate,
    UnspecifiedError,
    MalformedPacket,
    ProtocolError,
    ImplementationSpecificError,
    UnsupportedProtocolVersion,
    ClientIdentifierNotValid,
    BadUserNameOrPassword,
    NotAuthorized,
    ServerUnavailable,
    ServerBusy,
    Banned,
    ServerShuttingDown,
    BadAuthenticationMethod,
    KeepAliveTimeout,
    SessionTakenOver,
    TopicFilterInvalid,
    TopicNameInvalid,
    PacketIdentifierInUse,
    PacketIdentifierNotFound,
    ReceiveMaximumExceeded,
    TopicAliasInvalid,
    PacketTooLarge,
    MessageRateTooHigh,
    QuotaExceeded,
    AdministrativeAction,
    PayloadFormatInvalid,
    RetainNotSupported,
    QoSNotSupported,
    UseAnotherServer,
    ServerMoved,
    SharedSubscriptionsNotSupported,
    ConnectionRateExceeded,
    MaximumConnectTime,
    SubscriptionIdentifiersNotSupported,
    WildcardSubscriptionsNotSupported,
];

/// What a client may put in PUBACK and PUBREC (spec 3.4.2.1, 3.5.2.1).
pub(crate) const PUBACK_FROM_CLIENT: &[ReasonCode] = &[
    Success,
    NoMatchingSubscribers,
    UnspecifiedError,
    ImplementationSpecificError,
    NotAuthorized,
    TopicNameInvalid,
    PacketIdentifierInUse,
    QuotaExceeded,
    PayloadFormatInvalid,
];

/// What a client may put in PUBREL and PUBCOMP (spec 3.6.2.1, 3.7.2.1).
pub(crate) const PUBREL_FROM_CLIENT: &[ReasonCode] = &[Success, PacketIdentifierNotFound];

/// The DISCONNECT reason codes the spec lets a client send (spec 3.14.2.1).
pub(crate) const DISCONNECT_FROM_CLIENT: &[ReasonCode] = &[
    Success,
    DisconnectWithWillMessage,
    UnspecifiedError,
    MalformedPacket,
    ProtocolError,
    ImplementationSpecificError,
    TopicNameInvalid,
    ReceiveMaximumExceeded,
    TopicAliasInvalid,
    PacketTooLarge,
    MessageRateTooHigh,
    QuotaExceeded,
    AdministrativeAction,
    PayloadFormatInvalid,
];

/// AUTH reason codes (spec 3.15.2.1), either direction.
pub(crate) const AUTH_CODES: &[ReasonCode] = &[Success, ContinueAuthentication, ReAuthenticate];

impl ReasonCode {
    pub fn from_u8(value: u8) -> Option<ReasonCode> {
        ALL.iter().copied().find(|code| *code as u8 == value)
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Codes 0x80 and above are failures.
    pub fn is_error(self) -> bool {
        self.as_u8() >= 0x80
    }

    /// The SUBACK code granting `qos`.
    pub fn granted(qos: super::QoS) -> ReasonCode {
        match qos {
            super::QoS::AtMostOnce => Success,
            super::QoS::AtLeastOnce => GrantedQoS1,
            super::QoS::ExactlyOnce => GrantedQoS2,
        }
    }

    /// The MQTT 3.1.1 CONNACK return code for this outcome (spec 3.2.2.3). 3.1.1 has five
    /// refusals; each MQTT 5 code goes to the closest, and anything without a closer match is
    /// "server unavailable" (3), the answer that makes a client retry later.
    pub fn v4_connack_code(self) -> u8 {
        match self {
            Success => 0,
            UnsupportedProtocolVersion => 1,
            ClientIdentifierNotValid => 2,
            BadUserNameOrPassword | BadAuthenticationMethod => 4,
            NotAuthorized | Banned => 5,
            _ => 3,
        }
    }

    /// The MQTT 3.1.1 SUBACK return code: the granted QoS, or 0x80 for any failure.
    pub fn v4_suback_code(self) -> u8 {
        match self {
            Success => 0,
            GrantedQoS1 => 1,
            GrantedQoS2 => 2,
            _ => 0x80,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_byte() {
        for code in ALL {
            assert_eq!(ReasonCode::from_u8(code.as_u8()), Some(code));
        }
        assert_eq!(ReasonCode::from_u8(0x03), None);
        assert_eq!(ReasonCode::from_u8(0xFF), None);
    }

    #[test]
    fn v5_codes_map_to_v4_connack_return_codes() {
        assert_eq!(Success.v4_connack_code(), 0);
        assert_eq!(UnsupportedProtocolVersion.v4_connack_code(), 1);
        assert_eq!(ClientIdentifierNotValid.v4_connack_code(), 2);
        assert_eq!(ServerUnavailable.v4_connack_code(), 3);
        assert_eq!(QuotaExceeded.v4_connack_code(), 3);
        assert_eq!(BadUserNameOrPassword.v4_connack_code(), 4);
        assert_eq!(NotAuthorized.v4_connack_code(), 5);
    }

    #[test]
    fn v5_suback_failures_become_0x80_on_v4() {
        assert_eq!(GrantedQoS2.v4_suback_code(), 2);
        assert_eq!(TopicFilterInvalid.v4_suback_code(), 0x80);
        assert_eq!(QuotaExceeded.v4_suback_code(), 0x80);
    }
}
