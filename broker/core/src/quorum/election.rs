//! Elections: roles and their transitions, pre-vote, votes, BeginQuorumEpoch, EndQuorumEpoch and
//! the role timers (election timeout, fetch timeout, check-quorum). See the module documentation
//! of [`super`] for the rules.

use std::collections::{BTreeMap, BTreeSet};

use super::state::ElectionState;
use super::{entry, Deferred, LeaderState, NodeId, Quorum, QuorumMessage, ReplicaProgress, Role};
use crate::env::{Env, Plant, Time};

impl Quorum {
    // ---- messages ----

    pub(super) fn on_vote(
        &mut self,
        env: &mut Env<'_>,
        from: NodeId,
        epoch: i32,
        candidate: NodeId,
        candidate_log: (i32, i64),
        pre_vote: bool,
    ) {
        let me = self.config.node_id;
        if !self.is_voter() || candidate != from || candidate == me || !self.voters.contains(&candidate) {
            return;
        }
        if epoch < self.state.epoch {
            let epoch = self.state.epoch;
            self.send(candidate, QuorumMessage::VoteResponse { epoch, granted: false, pre_vote });
            return;
        }
        if epoch > self.state.epoch {
            self.become_epoch(env, epoch, None);
        }
        let epoch = self.state.epoch;
        let log_ok = candidate_log >= (self.last_epoch(), self.log.log_end_offset());
        if pre_vote {
            let granted =
                log_ok && !matches!(self.role, Role::Leader(_)) && !self.heard_from_leader_recently(env.now);
            self.send(candidate, QuorumMessage::VoteResponse { epoch, granted, pre_vote: true });
            return;
        }
        if self.state.voted_for == Some(candidate) {
            self.grant_vote_when_durable(env, candidate);
            return;
        }
        if self.state.voted_for.is_some() || self.state.leader.is_some() || !log_ok {
            self.send(candidate, QuorumMessage::VoteResponse { epoch, granted: false, pre_vote: false });
            return;
        }
        self.set_state(env, ElectionState { voted_for: Some(candidate), ..self.state });
        let election_deadline = self.random_election_deadline(env);
        self.role = Role::Voted { candidate, election_deadline };
        self.grant_vote_when_durable(env, candidate);
    }

    pub(super) fn on_vote_response(
        &mut self,
        env: &mut Env<'_>,
        from: NodeId,
        epoch: i32,
        granted: bool,
        pre_vote: bool,
    ) {
        if !self.is_voter() || !self.voters.contains(&from) {
            return;
        }
        if epoch > self.state.epoch {
            self.become_epoch(env, epoch, None);
            return;
        }
        if epoch < self.state.epoch {
            return;
        }
        match &mut self.role {
            Role::Prospective { granted: yes, rejected: no, .. } if pre_vote => {
                if granted {
                    yes.insert(from);
                } else {
                    no.insert(from);
                }
                self.count_pre_votes(env);
            }
            Role::Candidate { granted: yes, rejected: no, votes_sent: true, .. } if !pre_vote => {
                if granted {
                    yes.insert(from);
                } else {
                    no.insert(from);
                }
                self.count_votes(env);
            }
            _ => {}
        }
    }

    pub(super) fn on_begin_quorum_epoch(
        &mut self,
        env: &mut Env<'_>,
        from: NodeId,
        epoch: i32,
        leader: NodeId,
    ) {
        if leader != from || leader == self.config.node_id || !self.voters.contains(&leader) {
            return;
        }
        if epoch < self.state.epoch {
            return;
        }
        if epoch > self.state.epoch {
            self.become_epoch(env, epoch, Some(leader));
            self.last_leader_contact = Some(env.now);
            return;
        }
        match &mut self.role {
            // This node leads this epoch (or led it): a second leader is impossible; ignore.
            Role::Leader(_) | Role::Resigned { .. } => {}
            Role::Observer { leader: known } => *known = Some(leader),
            Role::Follower { leader: known, fetch_deadline, .. } if *known == leader => {
                *fetch_deadline = env.now.plus_millis(self.config.fetch_timeout_ms);
                self.last_leader_contact = Some(env.now);
            }
            _ => {
                self.become_follower(env, leader);
                self.last_leader_contact = Some(env.now);
            }
        }
    }

    pub(super) fn on_end_quorum_epoch(
        &mut self,
        env: &mut Env<'_>,
        from: NodeId,
        epoch: i32,
        leader: NodeId,
    ) {
        if leader != from || !self.voters.contains(&leader) || !self.is_voter() || epoch < self.state.epoch {
            return;
        }
        if epoch > self.state.epoch {
            self.become_epoch(env, epoch, None);
        }
        let backoff =
            env.now.plus_millis(1 + env.rng.next_u64() % (self.config.election_timeout_ms / 4).max(1));
        match &mut self.role {
            Role::Follower { leader: known, fetch_deadline, leader_resigned } if *known == leader => {
                *leader_resigned = true;
                *fetch_deadline = (*fetch_deadline).min(backoff);
            }
            Role::Unattached { election_deadline } | Role::Voted { election_deadline, .. } => {
                *election_deadline = (*election_deadline).min(backoff);
            }
            _ => return,
        }
        self.last_leader_contact = None;
    }

    // ---- timers ----

    pub(super) fn on_role_timer(&mut self, env: &mut Env<'_>) {
        let now = env.now;
        let due = match &self.role {
            Role::Unattached { election_deadline }
            | Role::Voted { election_deadline, .. }
            | Role::Resigned { election_deadline } => now >= *election_deadline,
            Role::Follower { fetch_deadline, .. } => now >= *fetch_deadline,
            Role::Prospective { deadline, .. } | Role::Candidate { deadline, .. } => now >= *deadline,
            Role::Leader(_) => {
                self.on_leader_timer(env);
                false
            }
            Role::Observer { .. } => false,
        };
        if due {
            self.become_prospective(env);
        }
    }

    fn on_leader_timer(&mut self, env: &mut Env<'_>) {
        let now = env.now;
        let fetch_timeout_ns = self.config.fetch_timeout_ms.saturating_mul(1_000_000);
        let request_timeout_ns = self.config.request_timeout_ms.saturating_mul(1_000_000);
        let majority = self.majority();
        let Role::Leader(leader) = &mut self.role else { return };
        if now >= leader.check_quorum_at {
            let recent =
                leader.replicas.values().filter(|p| now.since(p.last_fetch) <= fetch_timeout_ns).count();
            if 1 + recent < majority {
                // Check-quorum: cut off from a majority, this leader can commit nothing; stepping
                // aside lets the majority side elect without waiting for it.
                self.become_resigned(env);
                return;
            }
            leader.check_quorum_at = now.plus_millis((self.config.fetch_timeout_ms / 4).max(1));
        }
        if now >= leader.begin_resend_at {
            leader.begin_resend_at = now.plus_millis(self.config.request_timeout_ms);
            let silent: Vec<NodeId> = leader
                .replicas
                .iter()
                .filter(|(_, progress)| now.since(progress.last_fetch) > request_timeout_ns)
                .map(|(voter, _)| *voter)
                .collect();
            let (epoch, me) = (self.state.epoch, self.config.node_id);
            for voter in silent {
                self.send(voter, QuorumMessage::BeginQuorumEpoch { epoch, leader: me });
            }
        }
    }

    // ---- transitions ----

    /// Moves to a higher epoch: follows `leader` if known, else unattached (observers stay
    /// observers). Persisted.
    pub(super) fn become_epoch(&mut self, env: &mut Env<'_>, epoch: i32, leader: Option<NodeId>) {
        assert!(epoch > self.state.epoch, "epochs only move forward");
        let leader = leader.filter(|leader| *leader != self.config.node_id && self.voters.contains(leader));
        self.set_state(env, ElectionState { epoch, voted_for: None, leader });
        self.last_leader_contact = None;
        self.reset_fetcher(env);
        self.role = if !self.is_voter() {
            Role::Observer { leader }
        } else if let Some(leader) = leader {
            Role::Follower {
                leader,
                fetch_deadline: env.now.plus_millis(self.config.fetch_timeout_ms),
                leader_resigned: false,
            }
        } else {
            Role::Unattached { election_deadline: self.random_election_deadline(env) }
        };
    }

    /// Learns the leader of the current epoch. Persisted.
    fn become_follower(&mut self, env: &mut Env<'_>, leader: NodeId) {
        self.set_state(env, ElectionState { leader: Some(leader), ..self.state });
        self.reset_fetcher(env);
        self.role = Role::Follower {
            leader,
            fetch_deadline: env.now.plus_millis(self.config.fetch_timeout_ms),
            leader_resigned: false,
        };
    }

    pub(super) fn become_resigned(&mut self, env: &mut Env<'_>) {
        self.last_leader_contact = None;
        self.role = Role::Resigned { election_deadline: self.random_election_deadline(env) };
    }

    /// Starts (or restarts) a round of pre-votes in the current epoch. Nothing is persisted.
    fn become_prospective(&mut self, env: &mut Env<'_>) {
        if !self.is_voter() {
            return;
        }
        let previous_leader = match &self.role {
            Role::Follower { leader, leader_resigned: false, .. } => Some(*leader),
            Role::Prospective { previous_leader, .. } => *previous_leader,
            _ => None,
        };
        let me = self.config.node_id;
        self.reset_fetcher(env);
        self.role = Role::Prospective {
            granted: BTreeSet::from([me]),
            rejected: BTreeSet::new(),
            deadline: self.random_election_deadline(env),
            previous_leader,
        };
        let request = QuorumMessage::Vote {
            epoch: self.state.epoch,
            candidate: me,
            last_epoch: self.last_epoch(),
            end_offset: self.log.log_end_offset(),
            pre_vote: true,
        };
        for voter in self.other_voters() {
            self.send(voter, request.clone());
        }
        self.count_pre_votes(env);
    }

    fn count_pre_votes(&mut self, env: &mut Env<'_>) {
        let Role::Prospective { granted, rejected, previous_leader, .. } = &self.role else { return };
        let majority = self.majority();
        // A cut of the log that is not yet durable must not meet a new epoch's appends: a crash
        // could keep the later segment and lose the cut, reviving entries under the new epoch.
        // The pre-vote round is retried at its deadline, by when the cut's sync has completed.
        if granted.len() >= majority && self.truncation_barrier.is_none() {
            self.become_candidate(env);
        } else if rejected.len() > self.voters.len() - majority {
            // Lost: a majority still hears from a leader (or has a better log). Go back to
            // following the leader this node knew, if any, instead of disrupting anyone.
            match *previous_leader {
                Some(leader) if self.state.leader == Some(leader) => {
                    self.reset_fetcher(env);
                    self.role = Role::Follower {
                        leader,
                        fetch_deadline: env.now.plus_millis(self.config.fetch_timeout_ms),
                        leader_resigned: false,
                    };
                }
                _ => {
                    let election_deadline = self.random_election_deadline(env);
                    self.role = match self.state.voted_for {
                        Some(candidate) => Role::Voted { candidate, election_deadline },
                        None => Role::Unattached { election_deadline },
                    };
                }
            }
        }
    }

    /// Bumps the epoch and votes for itself; the Vote requests go out once that is durable.
    fn become_candidate(&mut self, env: &mut Env<'_>) {
        let Some(epoch) = self.state.epoch.checked_add(1) else {
            self.halt("the epoch cannot grow any further".to_string());
            return;
        };
        let me = self.config.node_id;
        let sequence = self.set_state(env, ElectionState { epoch, voted_for: Some(me), leader: None });
        self.last_leader_contact = None;
        self.role = Role::Candidate {
            granted: BTreeSet::new(),
            rejected: BTreeSet::new(),
            deadline: self.random_election_deadline(env),
            votes_sent: false,
        };
        if env.faults.planted(Plant::VoteBeforePersist) {
            self.send_vote_requests(env);
        } else {
            self.deferred.push(Deferred::SendVotes { sequence, epoch });
        }
    }

    /// The candidate's vote for itself is durable: count it and ask the others.
    pub(super) fn send_vote_requests(&mut self, env: &mut Env<'_>) {
        let me = self.config.node_id;
        let Role::Candidate { granted, votes_sent, .. } = &mut self.role else { return };
        *votes_sent = true;
        granted.insert(me);
        let request = QuorumMessage::Vote {
            epoch: self.state.epoch,
            candidate: me,
            last_epoch: self.last_epoch(),
            end_offset: self.log.log_end_offset(),
            pre_vote: false,
        };
        for voter in self.other_voters() {
            self.send(voter, request.clone());
        }
        self.count_votes(env);
    }

    fn count_votes(&mut self, env: &mut Env<'_>) {
        let Role::Candidate { granted, votes_sent: true, .. } = &self.role else { return };
        if granted.len() >= self.majority() {
            self.become_leader(env);
        }
    }

    fn become_leader(&mut self, env: &mut Env<'_>) {
        let me = self.config.node_id;
        let epoch = self.state.epoch;
        let now = env.now;
        let replicas: BTreeMap<NodeId, ReplicaProgress> = self
            .other_voters()
            .into_iter()
            .map(|voter| (voter, ReplicaProgress { durable_end: 0, last_fetch: now }))
            .collect();
        self.role = Role::Leader(LeaderState {
            replicas,
            check_quorum_at: now.plus_millis(self.config.fetch_timeout_ms),
            begin_resend_at: now.plus_millis(self.config.request_timeout_ms),
        });
        self.set_state(env, ElectionState { epoch, voted_for: Some(me), leader: Some(me) });
        self.last_leader_contact = None;
        self.reset_fetcher(env);
        let control = entry::encode_leader_change(epoch, me, env.wall_clock_ms);
        match self.log.append(env, &control) {
            Ok(info) => self.push_entries(info.base_offset, epoch, std::iter::once(0)),
            Err(error) => {
                self.halt(format!("the leader cannot append its epoch-start entry: {error:?}"));
                return;
            }
        }
        self.start_log_sync();
        for voter in self.other_voters() {
            self.send(voter, QuorumMessage::BeginQuorumEpoch { epoch, leader: me });
        }
        self.update_high_watermark(env);
    }

    // ---- helpers ----

    fn grant_vote_when_durable(&mut self, env: &mut Env<'_>, candidate: NodeId) {
        let epoch = self.state.epoch;
        if self.state_is_durable() || env.faults.planted(Plant::VoteBeforePersist) {
            self.send(candidate, QuorumMessage::VoteResponse { epoch, granted: true, pre_vote: false });
        } else {
            let sequence = self.state_sequence;
            self.deferred.push(Deferred::GrantVote { sequence, epoch, candidate });
        }
    }

    fn heard_from_leader_recently(&self, now: Time) -> bool {
        let timeout_ns = self.config.election_timeout_ms.saturating_mul(1_000_000);
        self.last_leader_contact.is_some_and(|contact| now.since(contact) < timeout_ns)
    }
}
