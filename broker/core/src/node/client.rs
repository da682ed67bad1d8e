//! The broker role's client API: metadata answered from the applied image, admin requests
//! forwarded to the active controller, and the partition data plane (produce, fetch, offsets)
//! handed to the partition replicas.

use super::{Node, NodeMessage, State};
use crate::env::{Env, Time};
use crate::metadata::{ControllerRequest, ControllerResponse};
use crate::protocol::{
    topic_config, Acks, BrokerView, ClientRequest, ClientResponse, ClusterView, ConfigEntry, ErrorCode,
    PartitionFetch, PartitionView, TopicView,
};
use crate::quorum::NodeId;

/// Correlation ids of forwarded admin requests live above this bit, apart from the broker role's.
pub(super) const FORWARDED_BIT: u64 = 1 << 63;

/// An admin request forwarded to the controller, waiting for its answer.
#[derive(Clone, Debug)]
pub(super) struct Forwarded {
    pub client: NodeId,
    pub correlation_id: u64,
    pub request: ControllerRequest,
    pub deadline: Time,
}

impl Node {
    pub(super) fn on_client_request(
        &mut self,
        env: &mut Env<'_>,
        from: NodeId,
        correlation_id: u64,
        request: ClientRequest,
    ) {
        if !self.serving_clients {
            // Only a broker that caught up and was unfenced serves clients (a controller-only node
            // never does): Kafka would not even have accepted the connection.
            if let Some(response) = not_serving_response(&request) {
                self.send(from, NodeMessage::ClientResponse { correlation_id, response });
            }
            return;
        }
        let response = match request {
            ClientRequest::Metadata { topics } => {
                Some(with_brokers(self.cluster_view(topics), ClientResponse::Metadata))
            }
            ClientRequest::DescribeCluster => {
                Some(with_brokers(self.cluster_view(Some(Vec::new())), ClientResponse::DescribeCluster))
            }
            ClientRequest::DescribeConfigs { topic } => {
                Some(ClientResponse::DescribeConfigs(self.describe_configs(&topic)))
            }
            ClientRequest::Controller(request) => {
                self.forward_to_controller(env.now, from, correlation_id, request);
                None
            }
            request @ (ClientRequest::Produce { .. }
            | ClientRequest::Fetch(_)
            | ClientRequest::ListOffsets { .. }
            | ClientRequest::OffsetForLeaderEpoch { .. }) => {
                self.on_partition_request(env, from, correlation_id, request)
            }
        };
        if let Some(response) = response {
            self.send(from, NodeMessage::ClientResponse { correlation_id, response });
        }
    }

    fn forward_to_controller(
        &mut self,
        now: Time,
        client: NodeId,
        correlation_id: u64,
        request: ControllerRequest,
    ) {
        let Some(leader) = self.quorum.leader() else {
            let response = ClientResponse::Controller(request.error_response(ErrorCode::NotController));
            self.send(client, NodeMessage::ClientResponse { correlation_id, response });
            return;
        };
        let forwarded_id = FORWARDED_BIT | self.next_forward_id;
        self.next_forward_id += 1;
        let deadline = now.plus_millis(self.config.quorum.request_timeout_ms.saturating_mul(5));
        self.forwarded
            .insert(forwarded_id, Forwarded { client, correlation_id, request: request.clone(), deadline });
        self.send(leader, NodeMessage::ControllerRequest { correlation_id: forwarded_id, request });
    }

    /// The controller answered a forwarded request: pass it on to the client.
    pub(super) fn on_forwarded_response(&mut self, correlation_id: u64, response: ControllerResponse) {
        if let Some(forwarded) = self.forwarded.remove(&correlation_id) {
            let response = ClientResponse::Controller(response);
            self.send(
                forwarded.client,
                NodeMessage::ClientResponse { correlation_id: forwarded.correlation_id, response },
            );
        }
    }

    /// Forwarded requests whose controller went silent get REQUEST_TIMED_OUT (the client retries).
    pub(super) fn expire_forwarded(&mut self, now: Time) {
        if self.state == State::Stopped {
            return;
        }
        let expired: Vec<u64> = self
            .forwarded
            .iter()
            .filter(|(_, forwarded)| forwarded.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            if let Some(forwarded) = self.forwarded.remove(&id) {
                let response =
                    ClientResponse::Controller(forwarded.request.error_response(ErrorCode::RequestTimedOut));
                self.send(
                    forwarded.client,
                    NodeMessage::ClientResponse { correlation_id: forwarded.correlation_id, response },
                );
            }
        }
    }

    pub(super) fn forwarded_deadline(&self) -> Option<Time> {
        self.forwarded.values().map(|forwarded| forwarded.deadline).min()
    }

    /// The cluster as this node's applied image shows it: unfenced brokers, and the topics asked
    /// for (every topic when `None`).
    pub fn cluster_view(&self, topics: Option<Vec<String>>) -> ClusterView {
        let image = &self.image;
        let brokers = image
            .brokers
            .values()
            .filter(|registration| !registration.fenced)
            .map(|registration| BrokerView {
                broker_id: registration.broker_id,
                endpoints: registration.endpoints.clone(),
                fenced: registration.fenced,
            })
            .collect();
        let names: Vec<String> = match topics {
            Some(names) => names,
            None => image.topics_by_name.keys().cloned().collect(),
        };
        let topics = names
            .into_iter()
            .map(|name| match image.topics_by_name.get(&name).and_then(|id| image.topics.get(id)) {
                None => TopicView {
                    name,
                    error: ErrorCode::UnknownTopicOrPartition,
                    topic_id: None,
                    partitions: Vec::new(),
                },
                Some(topic) => TopicView {
                    name,
                    error: ErrorCode::None,
                    topic_id: Some(topic.topic_id),
                    partitions: topic
                        .partitions
                        .iter()
                        .map(|(partition, state)| PartitionView {
                            partition: *partition,
                            leader: state.leader,
                            leader_epoch: state.leader_epoch,
                            replicas: state.replicas.clone(),
                            isr: state.isr.clone(),
                        })
                        .collect(),
                },
            })
            .collect();
        ClusterView {
            cluster_id: self.config.cluster_id.clone(),
            controller_id: self.quorum.leader(),
            brokers,
            topics,
        }
    }

    /// A topic's effective configs: its overrides, then the broker defaults for the rest.
    fn describe_configs(&self, topic: &str) -> Result<Vec<ConfigEntry>, ErrorCode> {
        let image = &self.image;
        let topic = image
            .topics_by_name
            .get(topic)
            .and_then(|id| image.topics.get(id))
            .ok_or(ErrorCode::UnknownTopicOrPartition)?;
        let defaults = self.config.replication.default_topic_configs();
        Ok(topic_config::ALL
            .iter()
            .map(|name| match topic.configs.get(*name) {
                Some(value) => {
                    ConfigEntry { name: name.to_string(), value: value.clone(), is_default: false }
                }
                None => ConfigEntry {
                    name: name.to_string(),
                    value: defaults.get(*name).cloned().unwrap_or_default(),
                    is_default: true,
                },
            })
            .collect())
    }
}

/// A view as the answer `kind`, or [`ClientResponse::NotServing`] when it names no broker (every
/// broker fenced in this image): clients forget every broker a Metadata answer leaves out.
fn with_brokers(view: ClusterView, kind: fn(ClusterView) -> ClientResponse) -> ClientResponse {
    if view.brokers.is_empty() {
        ClientResponse::NotServing
    } else {
        kind(view)
    }
}

/// The answer of a node that does not serve clients (yet) to `request`: a retriable error of the
/// request's kind — `NOT_CONTROLLER` for an admin request, `NOT_LEADER_OR_FOLLOWER` for the rest
/// (the client finds the leader again) — and [`ClientResponse::NotServing`] for Metadata and
/// DescribeCluster. `None` for an `acks=0` produce, which is never answered.
pub fn not_serving_response(request: &ClientRequest) -> Option<ClientResponse> {
    match request {
        ClientRequest::Produce { acks: Acks::None, .. } => None,
        ClientRequest::Controller(request) => {
            Some(ClientResponse::Controller(request.error_response(ErrorCode::NotController)))
        }
        request => Some(error_response(request, ErrorCode::NotLeaderOrFollower)),
    }
}

/// The answer of `request`'s kind carrying `error`. Metadata and DescribeCluster have no error
/// code of their own: they get [`ClientResponse::NotServing`], never a view without brokers.
pub fn error_response(request: &ClientRequest, error: ErrorCode) -> ClientResponse {
    match request {
        ClientRequest::Metadata { .. } | ClientRequest::DescribeCluster => ClientResponse::NotServing,
        ClientRequest::Produce { .. } => ClientResponse::Produce(Err(error)),
        ClientRequest::Fetch(_) => ClientResponse::Fetch(PartitionFetch {
            error,
            high_watermark: -1,
            log_start_offset: -1,
            diverging_epoch: None,
            current_leader: None,
            records: Vec::new(),
        }),
        ClientRequest::ListOffsets { .. } => ClientResponse::ListOffsets(Err(error)),
        ClientRequest::OffsetForLeaderEpoch { .. } => ClientResponse::OffsetForLeaderEpoch(Err(error)),
        ClientRequest::DescribeConfigs { .. } => ClientResponse::DescribeConfigs(Err(error)),
        ClientRequest::Controller(request) => ClientResponse::Controller(request.error_response(error)),
    }
}
