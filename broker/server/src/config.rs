//! The broker's configuration: a Java-style properties file with Kafka's key names, overridden
//! by `--override key=value` flags, turned into the core's [`NodeConfig`].
//!
//! Contract: every key Seedlog understands is listed in [`KNOWN_KEYS`] with its default; an
//! unknown key is returned as a warning (Kafka logs and ignores them too); a value that does not
//! parse, or settings that contradict each other (a controller whose id is not among the voters, a
//! listener that does not exist), is an error that names the key. With no file and no overrides the
//! result is the embedded default: node 1, a combined broker and controller, clients on
//! 127.0.0.1:9092, node-to-node traffic on 127.0.0.1:9093, data in `./data`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use seedlog_core::log::LogConfig;
use seedlog_core::metadata::{ControllerConfig, Endpoint};
use seedlog_core::node::NodeConfig;
use seedlog_core::quorum::{NodeId, QuorumConfig};
use seedlog_core::replica::{FlushPolicy, ReplicationConfig};

/// Every key Seedlog reads, with its default (`""` = derived from other keys, see the docs).
pub const KNOWN_KEYS: &[(&str, &str)] = &[
    ("node.id", "1"),
    ("process.roles", "broker,controller"),
    ("controller.quorum.voters", ""),
    ("controller.listener.names", "CONTROLLER"),
    ("listeners", "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"),
    ("advertised.listeners", ""),
    ("log.dirs", "./data"),
    ("log.dir", ""),
    ("cluster.id", "seedlog"),
    ("num.partitions", "1"),
    ("default.replication.factor", "1"),
    ("min.insync.replicas", "1"),
    ("unclean.leader.election.enable", "false"),
    ("log.segment.bytes", "1073741824"),
    ("log.retention.ms", ""),
    ("log.retention.hours", "168"),
    ("log.retention.bytes", "-1"),
    ("log.flush.interval.ms", ""),
    ("seedlog.flush.policy", ""),
    ("message.max.bytes", "1048588"),
    ("socket.request.max.bytes", "104857600"),
    ("connections.max.idle.ms", "600000"),
    ("fetch.max.bytes", "57671680"),
    ("broker.heartbeat.interval.ms", "2000"),
    ("broker.session.timeout.ms", "9000"),
    ("controller.quorum.election.timeout.ms", "1000"),
    ("controller.quorum.fetch.timeout.ms", "2000"),
    ("controller.quorum.request.timeout.ms", "2000"),
    ("replica.lag.time.max.ms", "30000"),
    ("replica.fetch.wait.max.ms", "500"),
    ("replica.fetch.max.bytes", "1048576"),
    ("replica.fetch.backoff.ms", "1000"),
    ("metadata.log.segment.bytes", "8388608"),
    ("seedlog.metadata.snapshot.records", "10000"),
];

/// One `NAME://host:port` entry of `listeners` / `advertised.listeners`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Listener {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// The driver's view of the configuration: the core's part and what only the driver uses.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    pub node: NodeConfig,
    /// Where to bind: every listener, the node-to-node one included.
    pub listeners: Vec<Listener>,
    /// The listener that carries Seedlog's node-to-node messages (the first controller listener).
    pub internal_listener: String,
    /// `controller.quorum.voters`: id → `host:port` of its internal listener.
    pub voters: BTreeMap<NodeId, String>,
    pub data_dir: PathBuf,
    /// `socket.request.max.bytes`: a larger request frame closes the connection.
    pub request_bytes_max: u32,
    /// `message.max.bytes`: a larger produced batch gets MESSAGE_TOO_LARGE.
    pub message_bytes_max: u32,
    /// `connections.max.idle.ms`: a client connection that delivered no request and took no
    /// response for this long is closed (so is a response write stalled this long).
    pub connection_idle_ms: u64,
    /// Every key and its effective value (DescribeConfigs on the broker resource).
    pub properties: BTreeMap<String, String>,
}

/// Reads a properties file: `key=value` or `key: value` lines, `#`/`!` comments, blank lines.
/// (Kafka's files need no more: no line continuations or escapes.)
pub fn parse_properties(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut properties = BTreeMap::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
            continue;
        }
        let Some(split) = line.find(['=', ':']) else {
            return Err(format!("line {}: `{line}` is not key=value", number + 1));
        };
        let key = line[..split].trim();
        let value = line[split + 1..].trim();
        if key.is_empty() {
            return Err(format!("line {}: empty key", number + 1));
        }
        properties.insert(key.to_string(), value.to_string());
    }
    Ok(properties)
}

/// Splits an `--override key=value` flag.
pub fn parse_override(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("--override `{text}` is not key=value")),
    }
}

impl ServerConfig {
    /// Builds the configuration from the file's properties and the overrides (later wins).
    /// Returns it with the warnings (unknown keys) to print.
    pub fn from_properties(
        file: BTreeMap<String, String>,
        overrides: &[(String, String)],
    ) -> Result<(ServerConfig, Vec<String>), String> {
        let mut given = file;
        for (key, value) in overrides {
            given.insert(key.clone(), value.clone());
        }
        let warnings: Vec<String> = given
            .keys()
            .filter(|key| !KNOWN_KEYS.iter().any(|(known, _)| known == key))
            .map(|key| format!("unknown configuration key `{key}` ignored"))
            .collect();
        let reader = Reader { given: &given };
        let config = build(&reader)?;
        Ok((config, warnings))
    }

    /// The embedded default configuration (what `seedlog broker` runs with no flags).
    pub fn embedded_default() -> ServerConfig {
        // The defaults are this module's own constants; they always parse.
        match ServerConfig::from_properties(BTreeMap::new(), &[]) {
            Ok((config, _)) => config,
            Err(error) => panic!("the embedded default configuration is invalid: {error}"),
        }
    }

    /// The client-facing listeners (every listener but the internal one).
    pub fn client_listeners(&self) -> impl Iterator<Item = &Listener> {
        self.listeners.iter().filter(|listener| listener.name != self.internal_listener)
    }

    /// This node's internal listener.
    pub fn internal(&self) -> Option<&Listener> {
        self.listeners.iter().find(|listener| listener.name == self.internal_listener)
    }
}

struct Reader<'a> {
    given: &'a BTreeMap<String, String>,
}

impl Reader<'_> {
    fn raw(&self, key: &str) -> String {
        match self.given.get(key) {
            Some(value) => value.clone(),
            None => KNOWN_KEYS
                .iter()
                .find(|(known, _)| *known == key)
                .map(|(_, default)| default.to_string())
                .unwrap_or_default(),
        }
    }

    fn is_set(&self, key: &str) -> bool {
        self.given.get(key).is_some_and(|value| !value.is_empty())
    }

    fn number<T: std::str::FromStr>(&self, key: &str) -> Result<T, String> {
        let raw = self.raw(key);
        raw.parse::<T>().map_err(|_| format!("`{key}={raw}`: not a valid number for this setting"))
    }

    fn positive(&self, key: &str) -> Result<u64, String> {
        let value: u64 = self.number(key)?;
        if value == 0 {
            return Err(format!("`{key}` must be positive"));
        }
        Ok(value)
    }

    fn boolean(&self, key: &str) -> Result<bool, String> {
        let raw = self.raw(key);
        match raw.to_ascii_lowercase().as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(format!("`{key}={raw}`: expected true or false")),
        }
    }
}

fn build(reader: &Reader<'_>) -> Result<ServerConfig, String> {
    let node_id: NodeId = reader.number("node.id")?;
    if node_id >= 0x8000_0000 {
        return Err(format!("`node.id={node_id}`: node ids must be below 2147483648"));
    }
    let roles = reader.raw("process.roles");
    let mut broker = false;
    let mut controller = false;
    for role in roles.split(',').map(str::trim).filter(|role| !role.is_empty()) {
        match role {
            "broker" => broker = true,
            "controller" => controller = true,
            other => return Err(format!("`process.roles`: unknown role `{other}` (broker, controller)")),
        }
    }
    if !broker && !controller {
        return Err("`process.roles` must name broker, controller or both".into());
    }
    let listeners = parse_listeners("listeners", &reader.raw("listeners"))?;
    let internal_listener = reader
        .raw("controller.listener.names")
        .split(',')
        .map(str::trim)
        .find(|name| !name.is_empty())
        .ok_or("`controller.listener.names` is empty")?
        .to_string();
    let internal = listeners.iter().find(|listener| listener.name == internal_listener).ok_or_else(|| {
        format!(
            "`listeners` has no `{internal_listener}` listener (`controller.listener.names`); every node \
             needs one: it carries the node-to-node messages"
        )
    })?;
    let voters = if reader.is_set("controller.quorum.voters") {
        parse_voters(&reader.raw("controller.quorum.voters"))?
    } else if controller {
        BTreeMap::from([(node_id, internal.address())])
    } else {
        return Err("`controller.quorum.voters` is required on a broker-only node".into());
    };
    if controller != voters.contains_key(&node_id) {
        return Err(format!(
            "node {node_id} {} the controller role but {} among `controller.quorum.voters`",
            if controller { "has" } else { "does not have" },
            if controller { "is not" } else { "is" }
        ));
    }
    let advertised = if reader.is_set("advertised.listeners") {
        parse_listeners("advertised.listeners", &reader.raw("advertised.listeners"))?
    } else {
        listeners.clone()
    };
    for listener in &advertised {
        if !listeners.iter().any(|bound| bound.name == listener.name) {
            return Err(format!(
                "`advertised.listeners` names `{}`, which is not in `listeners`",
                listener.name
            ));
        }
    }
    let mut endpoints: Vec<Endpoint> = advertised
        .iter()
        .map(|listener| Endpoint {
            listener: listener.name.clone(),
            host: listener.host.clone(),
            port: listener.port,
        })
        .collect();
    if !endpoints.iter().any(|endpoint| endpoint.listener == internal_listener) {
        endpoints.push(Endpoint {
            listener: internal.name.clone(),
            host: internal.host.clone(),
            port: internal.port,
        });
    }

    let data_dir = {
        let dirs = if reader.is_set("log.dir") && !reader.given.contains_key("log.dirs") {
            reader.raw("log.dir")
        } else {
            reader.raw("log.dirs")
        };
        let first =
            dirs.split(',').map(str::trim).find(|dir| !dir.is_empty()).ok_or("`log.dirs` is empty")?;
        PathBuf::from(first)
    };

    let segment_bytes = reader.positive("log.segment.bytes")?;
    let retention_ms: Option<i64> = if reader.is_set("log.retention.ms") {
        let ms: i64 = reader.number("log.retention.ms")?;
        (ms >= 0).then_some(ms)
    } else {
        let hours: i64 = reader.number("log.retention.hours")?;
        (hours >= 0).then(|| hours.saturating_mul(3_600_000))
    };
    let retention_bytes: i64 = reader.number("log.retention.bytes")?;
    let message_bytes_max: u32 = reader.number("message.max.bytes")?;
    if message_bytes_max < 64 {
        return Err("`message.max.bytes` must be at least 64".into());
    }
    let log = LogConfig {
        segment_bytes,
        retention_ms,
        retention_bytes: u64::try_from(retention_bytes).ok(),
        max_batch_bytes: u64::from(message_bytes_max),
        ..LogConfig::default()
    };
    log.validate().map_err(|error| format!("log settings: {error}"))?;
    let flush = flush_policy(reader)?;

    let min_insync_replicas: u16 = reader.number("min.insync.replicas")?;
    let default_replication_factor: u16 = reader.number("default.replication.factor")?;
    let num_partitions: u32 = reader.number("num.partitions")?;
    if min_insync_replicas == 0 || default_replication_factor == 0 || num_partitions == 0 {
        return Err(
            "`min.insync.replicas`, `default.replication.factor` and `num.partitions` must be positive"
                .into(),
        );
    }
    let replication = ReplicationConfig {
        log: log.clone(),
        min_insync_replicas,
        replica_lag_time_max_ms: reader.positive("replica.lag.time.max.ms")?,
        replica_fetch_wait_max_ms: reader.number("replica.fetch.wait.max.ms")?,
        replica_fetch_max_bytes: reader.number("replica.fetch.max.bytes")?,
        replica_fetch_backoff_ms: reader.number("replica.fetch.backoff.ms")?,
        flush,
        num_partitions,
        default_replication_factor,
        unclean_leader_election: reader.boolean("unclean.leader.election.enable")?,
        fetch_max_bytes: reader.number("fetch.max.bytes")?,
        ..ReplicationConfig::default()
    };
    let metadata_log = LogConfig {
        segment_bytes: reader.positive("metadata.log.segment.bytes")?,
        retention_bytes: None,
        retention_ms: None,
        ..LogConfig::default()
    };
    metadata_log.validate().map_err(|error| format!("metadata log settings: {error}"))?;
    let request_timeout_ms = reader.positive("controller.quorum.request.timeout.ms")?;
    let quorum = QuorumConfig {
        node_id,
        voters: voters.keys().copied().collect(),
        election_timeout_ms: reader.positive("controller.quorum.election.timeout.ms")?,
        fetch_timeout_ms: reader.positive("controller.quorum.fetch.timeout.ms")?,
        fetch_interval_ms: 200,
        request_timeout_ms,
        fetch_max_bytes: 1 << 20,
        log: metadata_log,
    };
    let cluster_id = reader.raw("cluster.id");
    if cluster_id.is_empty() {
        return Err("`cluster.id` must not be empty".into());
    }
    let node = NodeConfig {
        node_id,
        controller,
        broker,
        quorum,
        controller_config: ControllerConfig {
            broker_session_timeout_ms: reader.positive("broker.session.timeout.ms")?,
            default_replication_factor,
        },
        heartbeat_interval_ms: reader.positive("broker.heartbeat.interval.ms")?,
        endpoints,
        snapshot_every_records: reader.number("seedlog.metadata.snapshot.records")?,
        cluster_id,
        replication,
    };
    let request_bytes_max: u32 = reader.number("socket.request.max.bytes")?;
    if request_bytes_max < 1024 {
        return Err("`socket.request.max.bytes` must be at least 1024".into());
    }
    let connection_idle_ms = reader.positive("connections.max.idle.ms")?;
    let properties = KNOWN_KEYS.iter().map(|(key, _)| (key.to_string(), reader.raw(key))).collect();
    Ok(ServerConfig {
        node,
        listeners,
        internal_listener,
        voters,
        data_dir,
        request_bytes_max,
        message_bytes_max,
        connection_idle_ms,
        properties,
    })
}

fn flush_policy(reader: &Reader<'_>) -> Result<FlushPolicy, String> {
    let interval_ms: Option<u64> = if reader.is_set("log.flush.interval.ms") {
        Some(reader.number("log.flush.interval.ms")?)
    } else {
        None
    };
    let policy = reader.raw("seedlog.flush.policy").to_ascii_lowercase();
    match (policy.as_str(), interval_ms) {
        ("", None) | ("never", _) => Ok(FlushPolicy::Never),
        ("always", _) => Ok(FlushPolicy::Always),
        ("", Some(0)) => Ok(FlushPolicy::Always),
        ("" | "interval", Some(ms)) => Ok(FlushPolicy::Interval { ms }),
        ("interval", None) => Err("`seedlog.flush.policy=interval` needs `log.flush.interval.ms`".into()),
        (other, _) => Err(format!("`seedlog.flush.policy={other}`: expected always, interval or never")),
    }
}

/// `NAME://host:port,...`; `[::1]` hosts keep their brackets out; an empty host means 0.0.0.0.
pub fn parse_listeners(key: &str, text: &str) -> Result<Vec<Listener>, String> {
    let mut listeners: Vec<Listener> = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let (name, address) =
            entry.split_once("://").ok_or_else(|| format!("`{key}`: `{entry}` is not NAME://host:port"))?;
        let (host, port) =
            split_host_port(address).ok_or_else(|| format!("`{key}`: `{entry}` has no valid port"))?;
        if name.is_empty() {
            return Err(format!("`{key}`: `{entry}` has no listener name"));
        }
        if listeners.iter().any(|listener| listener.name == name) {
            return Err(format!("`{key}`: listener `{name}` appears twice"));
        }
        let host = if host.is_empty() { "0.0.0.0".to_string() } else { host };
        listeners.push(Listener { name: name.to_string(), host, port });
    }
    if listeners.is_empty() {
        return Err(format!("`{key}` is empty"));
    }
    Ok(listeners)
}

/// `id@host:port,...`
pub fn parse_voters(text: &str) -> Result<BTreeMap<NodeId, String>, String> {
    let mut voters = BTreeMap::new();
    for entry in text.split(',').map(str::trim).filter(|entry| !entry.is_empty()) {
        let bad = || format!("`controller.quorum.voters`: `{entry}` is not id@host:port");
        let (id, address) = entry.split_once('@').ok_or_else(bad)?;
        let id: NodeId = id.trim().parse().map_err(|_| bad())?;
        let (host, port) = split_host_port(address).ok_or_else(bad)?;
        if voters.insert(id, format!("{host}:{port}")).is_some() {
            return Err(format!("`controller.quorum.voters`: node {id} appears twice"));
        }
    }
    if voters.is_empty() {
        return Err("`controller.quorum.voters` is empty".into());
    }
    Ok(voters)
}

fn split_host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build_from(text: &str, overrides: &[&str]) -> Result<(ServerConfig, Vec<String>), String> {
        let overrides: Vec<(String, String)> =
            overrides.iter().map(|text| parse_override(text)).collect::<Result<_, _>>()?;
        ServerConfig::from_properties(parse_properties(text)?, &overrides)
    }

    #[test]
    fn the_embedded_default_is_a_single_combined_node() {
        let config = ServerConfig::embedded_default();
        assert_eq!(config.node.node_id, 1);
        assert!(config.node.broker && config.node.controller);
        assert_eq!(config.voters, BTreeMap::from([(1, "127.0.0.1:9093".to_string())]));
        assert_eq!(config.client_listeners().map(Listener::address).collect::<Vec<_>>(), ["127.0.0.1:9092"]);
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert_eq!(config.node.replication.flush, FlushPolicy::Never);
        assert_eq!(config.node.replication.log.retention_ms, Some(168 * 3_600_000));
    }

    #[test]
    fn a_file_and_overrides_set_kafka_keys() {
        let text = "# three voters\nnode.id=2\ncontroller.quorum.voters=1@h:1,2@h:2,3@h:3\n\
                    listeners = PLAINTEXT://:9192, CONTROLLER://127.0.0.1:2\nlog.dirs=/tmp/a,/tmp/b\n\
                    log.flush.interval.ms=50\nmystery.key=1\n";
        let (config, warnings) = build_from(text, &["num.partitions=6", "log.retention.ms=-1"]).unwrap();
        assert_eq!(warnings, ["unknown configuration key `mystery.key` ignored"]);
        assert_eq!(config.node.node_id, 2);
        assert_eq!(config.node.quorum.voters, [1, 2, 3]);
        assert_eq!(config.listeners[0].host, "0.0.0.0");
        assert_eq!(config.data_dir, PathBuf::from("/tmp/a"));
        assert_eq!(config.node.replication.flush, FlushPolicy::Interval { ms: 50 });
        assert_eq!(config.node.replication.num_partitions, 6);
        assert_eq!(config.node.replication.log.retention_ms, None);
    }

    #[test]
    fn bad_values_are_errors_that_name_the_key() {
        for (text, key) in [
            ("node.id=x", "node.id"),
            ("process.roles=observer", "process.roles"),
            ("listeners=PLAINTEXT://127.0.0.1:9092", "listeners"),
            ("controller.quorum.voters=7@h:1", "controller.quorum.voters"),
            ("unclean.leader.election.enable=maybe", "unclean.leader.election.enable"),
            ("seedlog.flush.policy=sometimes", "seedlog.flush.policy"),
            ("log.segment.bytes=0", "log.segment.bytes"),
        ] {
            let error = build_from(text, &[]).unwrap_err();
            assert!(error.contains(key), "{text}: {error}");
        }
        assert!(parse_override("novalue").is_err());
    }
}
