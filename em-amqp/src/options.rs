//! How a [`Client`](crate::Client) connects: the broker's URL, and the
//! client's side of the tuning (heartbeat, frame size, channels) and of
//! reconnecting.

use std::time::Duration;

use amq_protocol::uri::{AMQPScheme, AMQPUri};

use crate::error::{AmqpError, AmqpResult};

/// The client's side of a connection: the heartbeat it asks for, the
/// largest frame and the most channels it accepts, and the reconnect
/// back-off. The broker's URL may override the first three
/// (`?heartbeat=10&frame_max=65536&channel_max=64`, as RabbitMQ's URI spec
/// says).
///
/// ```
/// use std::time::Duration;
/// let options = em_amqp::Options::default()
///     .heartbeat(Duration::from_secs(10))
///     .reconnect_delays(Duration::from_millis(50), Duration::from_secs(5));
/// # let _ = options;
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    pub(crate) heartbeat: u16,
    pub(crate) frame_max: u32,
    pub(crate) channel_max: u16,
    pub(crate) reconnect_min: Duration,
    pub(crate) reconnect_max: Duration,
    pub(crate) name: Option<String>,
    pub(crate) connection_timeout: Duration,
}

impl Default for Options {
    /// A heartbeat every 60 s (the broker's default), frames up to
    /// 128 KiB (the broker's default), up to 2047 channels, reconnect after
    /// 100 ms doubling to at most 10 s; 10 s for the handshake.
    fn default() -> Self {
        Options {
            heartbeat: 60,
            frame_max: 128 * 1024,
            channel_max: 2047,
            reconnect_min: Duration::from_millis(100),
            reconnect_max: Duration::from_secs(10),
            name: None,
            connection_timeout: Duration::from_secs(10),
        }
    }
}

impl Options {
    /// The heartbeat asked for (whole seconds; zero turns heartbeats off
    /// on this side). The lower of this and the broker's wins. A heartbeat
    /// frame goes out every half period, and a connection that has heard
    /// nothing from the broker for two periods is closed (and reconnects).
    pub fn heartbeat(mut self, period: Duration) -> Self {
        self.heartbeat = period.as_secs().min(u16::MAX as u64) as u16;
        self
    }

    /// The largest frame accepted, in bytes (at least 4096, AMQP's
    /// minimum); the lower of this and the broker's wins. Message bodies
    /// larger than a frame are split into several.
    pub fn frame_max(mut self, bytes: u32) -> Self {
        self.frame_max = bytes.max(4096);
        self
    }

    /// The most channels open at once on one connection.
    pub fn channel_max(mut self, channels: u16) -> Self {
        self.channel_max = channels.max(1);
        self
    }

    /// The first reconnect waits `min`; each next one twice as long, up to
    /// `max`; back to `min` once connected.
    pub fn reconnect_delays(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max.max(min);
        self
    }

    /// How long the broker has, from the TCP connect, to finish the
    /// handshake; past it the try is given up and the client reconnects
    /// after its back-off (a balancer that accepts with no broker behind
    /// it). RabbitMQ's URI spec's `connection_timeout` (milliseconds) sets
    /// it too.
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout.max(Duration::from_millis(1));
        self
    }

    /// The connection's name, shown by the broker's management tools
    /// (`connection_name` in the client properties).
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

/// Where and as whom to connect, from an `amqp://` URL.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) username: String,
    pub(crate) password: String,
    pub(crate) vhost: String,
}

/// Reads `amqp://user:pass@host:port/vhost?heartbeat=…` with amq-protocol's
/// URI parser (the vhost is percent-decoded: `%2f` is `/`), and applies the
/// query's tuning to `options`.
pub(crate) fn parse_url(url: &str, options: &mut Options) -> AmqpResult<Target> {
    let uri: AMQPUri = url
        .parse()
        .map_err(|e| AmqpError::invalid(format!("{url:?} is not an AMQP URL: {e}")))?;
    if uri.scheme == AMQPScheme::AMQPS {
        return Err(AmqpError::invalid(format!(
            "{url:?}: amqps (AMQP over TLS) is not supported yet"
        )));
    }
    if let Some(h) = uri.query.heartbeat {
        options.heartbeat = h;
    }
    if let Some(f) = uri.query.frame_max {
        options.frame_max = f.max(4096);
    }
    if let Some(ms) = uri.query.connection_timeout {
        options.connection_timeout = Duration::from_millis(ms.max(1));
    }
    if let Some(c) = uri.query.channel_max {
        options.channel_max = c.max(1);
    }
    Ok(Target {
        host: uri.authority.host,
        port: uri.authority.port,
        username: uri.authority.userinfo.username,
        password: uri.authority.userinfo.password,
        vhost: uri.vhost,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_read_as_rabbitmq_says() {
        let mut o = Options::default();
        let t = parse_url(
            "amqp://u:p%40ss@example.org:5673/%2fprod?heartbeat=7",
            &mut o,
        )
        .unwrap();
        assert_eq!((t.host.as_str(), t.port), ("example.org", 5673));
        assert_eq!((t.username.as_str(), t.password.as_str()), ("u", "p@ss"));
        assert_eq!(t.vhost, "/prod");
        assert_eq!(o.heartbeat, 7);
        let t = parse_url("amqp://localhost", &mut o).unwrap();
        assert_eq!(
            (t.port, t.username.as_str(), t.vhost.as_str()),
            (5672, "guest", "/")
        );
        let e = parse_url("http://x", &mut o).unwrap_err();
        assert!(e.is_invalid_argument(), "{e}");
        assert!(parse_url("amqps://x", &mut o)
            .unwrap_err()
            .is_invalid_argument());
    }
}
