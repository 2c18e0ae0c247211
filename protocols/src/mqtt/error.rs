//! Decode errors and the server's reaction to each.
//!
//! Every way a client's bytes can be wrong is an [`ErrorKind`]; each kind maps to one MQTT 5
//! reason code ([`ErrorKind::reason_code`]). What the server sends before closing depends on
//! where the error happened and on the protocol version, so the [`super::Decoder`] pairs the kind
//! with a [`Reaction`] in an [`MqttError`]:
//!
//! - before the version is known: close (except an unknown protocol level, which gets the
//!   3.1.1 CONNACK 0x01 every client version can read);
//! - in a 3.1.1 CONNECT: a CONNACK return code when 3.1.1 has one for it (identifier
//!   rejected, bad user name or password), else close;
//! - in an MQTT 5 CONNECT: a CONNACK with the reason code, then close;
//! - after CONNECT: MQTT 5 sends a DISCONNECT with the reason code, 3.1.1 just closes.

use super::reason::ReasonCode;
use super::topic::TopicError;
use super::ProtocolVersion;

/// What was wrong with a client's packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    // Malformed packets (0x81): the bytes do not follow the grammar.
    #[error("malformed remaining length (more than 4 bytes)")]
    MalformedRemainingLength,
    #[error("malformed variable byte integer")]
    MalformedVarInt,
    #[error("packet shorter than its fields: {0}")]
    Truncated(&'static str),
    #[error("unexpected bytes after the end of {0}")]
    TrailingBytes(&'static str),
    #[error("invalid remaining length {len} for {packet}")]
    InvalidRemainingLength { packet: &'static str, len: usize },
    #[error("reserved packet type {0}")]
    ReservedPacketType(u8),
    #[error("invalid fixed header flags {flags:#x} for packet type {packet_type}")]
    InvalidFixedHeaderFlags { packet_type: u8, flags: u8 },
    #[error("invalid UTF-8 in string")]
    InvalidUtf8,
    #[error("null character in string")]
    NullCharacter,
    #[error("QoS 3 is invalid")]
    InvalidQoS,
    #[error("DUP set on a QoS 0 PUBLISH")]
    DupOnQoS0,
    #[error("connect flags reserved bit not set to 0")]
    ConnectReservedFlag,
    #[error("will QoS or will retain set without the will flag")]
    WillFlagsWithoutWill,
    #[error("password flag set but username flag is not")]
    PasswordWithoutUsername,
    #[error("reserved bits set in subscription options {0:#x}")]
    SubscriptionOptionsReserved(u8),
    #[error("unknown property identifier {0:#x}")]
    UnknownProperty(u32),
    #[error("unknown reason code {0:#x}")]
    UnknownReasonCode(u8),

    // Protocol errors (0x82): well-formed bytes that break a rule.
    #[error("the first packet should be a CONNECT, got packet type {0}")]
    FirstPacketNotConnect(u8),
    #[error("received a second CONNECT packet")]
    SecondConnect,
    #[error("a client may not send {0}")]
    UnexpectedPacket(&'static str),
    #[error("packet identifier cannot be 0")]
    PacketIdZero,
    #[error("property {id:#x} not allowed in {packet}")]
    PropertyNotAllowed { id: u8, packet: &'static str },
    #[error("property {0:#x} appears more than once")]
    DuplicateProperty(u8),
    #[error("invalid value {value} for property {id:#x}")]
    InvalidPropertyValue { id: u8, value: u32 },
    #[error("authentication data without authentication method")]
    AuthDataWithoutMethod,
    #[error("reason code {code:#x} not allowed in {packet}")]
    ReasonCodeNotAllowed { code: u8, packet: &'static str },
    #[error("retain handling 3 is invalid")]
    InvalidRetainHandling,
    #[error("no local set on a shared subscription")]
    NoLocalOnSharedSubscription,
    #[error("{0} must contain at least 1 topic filter")]
    NoTopicFilters(&'static str),
    #[error("empty topic without a topic alias")]
    EmptyTopicWithoutAlias,
    #[error("non-zero session expiry in DISCONNECT after zero in CONNECT")]
    SessionExpiryAfterZero,
    #[error("response topic contains wildcards")]
    WildcardInResponseTopic,

    // Errors with a reason code of their own.
    #[error("unacceptable protocol version of {0}")]
    UnsupportedProtocolVersion(u8),
    #[error("unknown protocol name")]
    UnknownProtocolName,
    #[error("when client ID is empty, clean session flag must be set to 1")]
    EmptyClientIdWithoutCleanSession,
    #[error("empty user name not allowed")]
    EmptyUsername,
    #[error("invalid topic name: {0}")]
    InvalidTopicName(TopicError),
    #[error("invalid topic filter: {0}")]
    InvalidTopicFilter(TopicError),
    #[error("topic alias 0 is not allowed")]
    TopicAliasZero,
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    PacketTooLarge { size: usize, max: usize },
}

impl ErrorKind {
    /// The MQTT 5 reason code the spec assigns to this error.
    pub fn reason_code(&self) -> ReasonCode {
        use ErrorKind::*;
        match self {
            MalformedRemainingLength
            | MalformedVarInt
            | Truncated(_)
            | TrailingBytes(_)
            | InvalidRemainingLength { .. }
            | ReservedPacketType(_)
            | InvalidFixedHeaderFlags { .. }
            | InvalidUtf8
            | NullCharacter
            | InvalidQoS
            | DupOnQoS0
            | ConnectReservedFlag
            | WillFlagsWithoutWill
            | PasswordWithoutUsername
            | SubscriptionOptionsReserved(_)
            | UnknownProperty(_)
            | UnknownReasonCode(_) => ReasonCode::MalformedPacket,
            FirstPacketNotConnect(_)
            | SecondConnect
            | UnexpectedPacket(_)
            | PacketIdZero
            | PropertyNotAllowed { .. }
            | DuplicateProperty(_)
            | InvalidPropertyValue { .. }
            | AuthDataWithoutMethod
            | ReasonCodeNotAllowed { .. }
            | InvalidRetainHandling
            | NoLocalOnSharedSubscription
            | NoTopicFilters(_)
            | EmptyTopicWithoutAlias
            | SessionExpiryAfterZero
            | WildcardInResponseTopic
            | UnknownProtocolName => ReasonCode::ProtocolError,
            UnsupportedProtocolVersion(_) => ReasonCode::UnsupportedProtocolVersion,
            EmptyClientIdWithoutCleanSession => ReasonCode::ClientIdentifierNotValid,
            EmptyUsername => ReasonCode::BadUserNameOrPassword,
            // 0x90 and 0x8F are for names and filters that are well formed but not accepted
            // (the gateway's own refusals); breaking the topic rules is an error of the packet,
            // as mosquitto answers: a name with a wildcard a protocol error, a filter that
            // does not parse (wildcards out of place, empty, a bad `$share/`) a malformed packet.
            InvalidTopicName(_) => ReasonCode::ProtocolError,
            InvalidTopicFilter(_) => ReasonCode::MalformedPacket,
            TopicAliasZero => ReasonCode::TopicAliasInvalid,
            PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
        }
    }
}

/// What the server must do about a refused packet. The connection is closed in every case;
/// the variants say what to send first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaction {
    /// Close without sending anything.
    Close,
    /// Send a CONNACK with this code (encoded for `version`, so a 3.1.1 client gets its return
    /// code), then close.
    ConnAck { version: ProtocolVersion, code: ReasonCode },
    /// MQTT 5 only: send a DISCONNECT with this reason code, then close.
    Disconnect(ReasonCode),
}

/// Where in the connection's life an error happened; decides the [`Reaction`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Before a CONNECT revealed the protocol version.
    Unknown,
    /// Inside the CONNECT of a client speaking this version.
    Connect(ProtocolVersion),
    /// After a successful CONNECT.
    Connected(ProtocolVersion),
}

/// A refused packet: what was wrong, and what to tell the client before closing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct MqttError {
    pub kind: ErrorKind,
    pub reaction: Reaction,
}

impl MqttError {
    pub(crate) fn new(kind: ErrorKind, phase: Phase) -> MqttError {
        let code = kind.reason_code();
        let reaction = match phase {
            Phase::Unknown => match kind {
                // A client of any version can read a 3.1.1 CONNACK; nothing else is safe.
                ErrorKind::UnsupportedProtocolVersion(_) => {
                    Reaction::ConnAck { version: ProtocolVersion::V4, code }
                }
                _ => Reaction::Close,
            },
            Phase::Connect(ProtocolVersion::V4) => match code {
                ReasonCode::ClientIdentifierNotValid | ReasonCode::BadUserNameOrPassword => {
                    Reaction::ConnAck { version: ProtocolVersion::V4, code }
                }
                // 3.1.1 [MQTT-3.2.2-6]: with no applicable return code, close without CONNACK.
                _ => Reaction::Close,
            },
            Phase::Connect(ProtocolVersion::V5) => Reaction::ConnAck { version: ProtocolVersion::V5, code },
            Phase::Connected(ProtocolVersion::V4) => Reaction::Close,
            Phase::Connected(ProtocolVersion::V5) => Reaction::Disconnect(code),
        };
        MqttError { kind, reaction }
    }

    /// The MQTT 5 reason code of the error.
    pub fn reason_code(&self) -> ReasonCode {
        self.kind.reason_code()
    }
}

/// Why a packet could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// Over the 268,435,455-byte limit of the remaining length field.
    #[error("packet too large to encode: remaining length {0}")]
    TooLarge(usize),
    /// The packet does not exist in MQTT 3.1.1 (DISCONNECT from a server, AUTH): a 3.1.1
    /// server just closes the connection instead.
    #[error("{0} does not exist in MQTT 3.1.1")]
    NotInVersion(&'static str),
    /// A string or binary field longer than its 16-bit length prefix allows.
    #[error("field longer than 65535 bytes")]
    FieldTooLong,
}
