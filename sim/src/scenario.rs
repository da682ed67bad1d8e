//! Scenarios: named runs as data files in `scenarios/`, each one a lesson with its expected verdict.
//!
//! A scenario file (JSON) names the workload, overrides any part of the seed's generated option set
//! (a JSON merge patch, RFC 7396, over [`Options`]: the cluster's shape, fault kinds and rates,
//! timings), says where the faults come from (drawn from the seed as usual, none, or an explicit
//! timed list), adds an optional script of role-targeted faults ([`crate::cluster::script`]),
//! planted bugs, and the verdict it must reach:
//!
//! ```json
//! {
//!   "name": "controller-leader-cut-off",
//!   "description": "what happens and why it is safe",
//!   "workload": "controller",
//!   "seed": 1,
//!   "options": { "cluster": { "voters": 3 }, "chaos_ms": 8000 },
//!   "faults": "none",
//!   "script": [ { "when": "leader_elected", "after_ms": 500,
//!                 "action": { "isolate": { "target": "leader", "duration_ms": 4000 } } } ],
//!   "expected": { "verdict": "ok" }
//! }
//! ```
//!
//! `seedlog-sim run --scenario FILE [--seed S]` runs one seed of it (the file's `seed` by default),
//! `seedlog-sim swarm --scenario FILE --seeds N` runs many; both report whether the verdict matched
//! what the file expects. An expected `fail` names the anomaly kinds that must show (a negative
//! control); in a swarm it must show in at least one seed. Expected `observations` name
//! observation kinds that must show (a loss the settings allow, found): in a swarm every seed must
//! reach the verdict and at least one must show them.

use std::path::Path;

use seedlog_core::env::Plant;

use crate::cluster::script::{Script, Step};
use crate::options::{Options, Workload};
use crate::plan::{Plan, TimedFault};
use crate::world::Outcome;

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VerdictKind {
    Ok,
    Fail,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Expected {
    pub verdict: VerdictKind,
    /// For an expected `fail`: anomaly kinds of which at least one must show.
    #[serde(default)]
    pub anomalies: Vec<String>,
    /// Observation kinds of which at least one must show (a negative control whose loss the
    /// settings allow: `{"verdict": "ok", "observations": ["lost-write-acks-1"]}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observations: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum FaultSource {
    /// `"generate"` (the seed's plan, from the patched options) or `"none"`.
    Named(String),
    Explicit(Vec<TimedFault>),
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub workload: Workload,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub plants: Vec<String>,
    #[serde(default)]
    pub options: serde_json::Value,
    #[serde(default = "generate")]
    pub faults: FaultSource,
    #[serde(default)]
    pub script: Vec<Step>,
    pub expected: Expected,
}

fn generate() -> FaultSource {
    FaultSource::Named("generate".into())
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, String> {
        let text =
            std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Scenario::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Scenario, String> {
        let scenario: Scenario =
            serde_json::from_str(text).map_err(|error| format!("not a Seedlog scenario: {error}"))?;
        scenario.plants()?;
        if let FaultSource::Named(name) = &scenario.faults {
            if name != "generate" && name != "none" {
                return Err(format!("faults must be \"generate\", \"none\" or a list, not {name:?}"));
            }
        }
        if !scenario.script.is_empty() && scenario.workload == Workload::Log {
            return Err("a script needs the controller or the cluster workload".into());
        }
        // Building one plan checks the patch and the faults.
        scenario.plan(scenario.seed)?;
        Ok(scenario)
    }

    pub fn plants(&self) -> Result<Vec<Plant>, String> {
        self.plants
            .iter()
            .map(|name| Plant::from_name(name).ok_or_else(|| format!("unknown plant {name:?}")))
            .collect()
    }

    /// The plan of this scenario for `seed`: the seed's options with the scenario's patch, then
    /// the faults the scenario names.
    pub fn plan(&self, seed: u64) -> Result<Plan, String> {
        let generated = Options::generate_for(self.workload, seed, &self.plants()?);
        let mut value = serde_json::to_value(&generated).map_err(|e| e.to_string())?;
        merge_patch(&mut value, &self.options);
        let mut options: Options = serde_json::from_value(value)
            .map_err(|error| format!("the options patch does not fit: {error}"))?;
        // `brokers` follows the cluster's shape (the patch may change it).
        if let Some(cluster) = &options.cluster {
            options.brokers = cluster.nodes();
        }
        if options.seed != seed {
            return Err("the options patch must not change the seed".into());
        }
        let plan = match &self.faults {
            FaultSource::Named(name) if name == "generate" => Plan::from_options(options),
            FaultSource::Named(_) => Plan { seed, options, faults: Vec::new() },
            FaultSource::Explicit(faults) => Plan { seed, options, faults: faults.clone() },
        };
        plan.validate().map_err(|error| format!("invalid scenario plan: {error}"))?;
        Ok(plan)
    }

    pub fn script(&self) -> Script {
        Script::new(self.script.clone())
    }

    /// Whether one run reached the expected verdict.
    pub fn matches(&self, outcome: &Outcome) -> bool {
        let verdict = match self.expected.verdict {
            VerdictKind::Ok => outcome.verdict.ok,
            VerdictKind::Fail => !outcome.verdict.ok && self.expected_kinds_shown(outcome),
        };
        verdict && self.expected_observations_shown(outcome)
    }

    /// Whether the scenario expects observations (a negative control that must show them).
    pub fn expects_observations(&self) -> bool {
        !self.expected.observations.is_empty()
    }

    fn expected_observations_shown(&self, outcome: &Outcome) -> bool {
        !self.expects_observations()
            || outcome.verdict.observations.iter().any(|o| self.expected.observations.contains(&o.kind))
    }

    fn expected_kinds_shown(&self, outcome: &Outcome) -> bool {
        self.expected.anomalies.is_empty()
            || outcome.verdict.anomalies.iter().any(|a| self.expected.anomalies.contains(&a.kind))
    }
}

/// RFC 7396: objects merge key by key, `null` removes, anything else replaces.
pub fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    use serde_json::Value;
    let Value::Object(patch) = patch else {
        if !patch.is_null() {
            *target = patch.clone();
        }
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let Value::Object(target) = target else { unreachable!() };
    for (key, value) in patch {
        if value.is_null() {
            target.remove(key);
        } else {
            merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_merges_objects_replaces_values_and_removes_nulls() {
        let mut target = serde_json::json!({"a": {"b": 1, "c": 2}, "d": [1, 2], "e": 5});
        merge_patch(&mut target, &serde_json::json!({"a": {"b": 7}, "d": [3], "e": null}));
        assert_eq!(target, serde_json::json!({"a": {"b": 7, "c": 2}, "d": [3]}));
    }

    #[test]
    fn a_patch_that_does_not_fit_the_options_is_a_clear_error() {
        let text = r#"{"name": "x", "description": "y", "options": {"chaos_ms": "soon"},
                       "expected": {"verdict": "ok"}}"#;
        let error = Scenario::parse(text).unwrap_err();
        assert!(error.contains("the options patch does not fit"), "{error}");
        let text = r#"{"name": "x", "description": "y", "faults": "some", "expected": {"verdict": "ok"}}"#;
        assert!(Scenario::parse(text).unwrap_err().contains("faults must be"));
        let text = r#"{"name": "x", "description": "y", "plants": ["nope"], "expected": {"verdict": "ok"}}"#;
        assert!(Scenario::parse(text).unwrap_err().contains("unknown plant"));
    }
}
