//! BUGGIFY fault sites and planted bugs, as the simulator hands them to the core.
//!
//! A BUGGIFY site (FoundationDB's idea) is a named place in the core where a rare but legal path
//! can be forced. When BUGGIFY is on for a run, each site is *activated* for the whole run with
//! probability `activation_probability` the first time the core asks about it, and an activated
//! site then *fires* with probability `fire_probability` each time. Activation is remembered in a
//! `BTreeMap` so the order of questions, not a hash, decides everything. Planted bugs are fixed for
//! the run by the options. Production uses `seedlog_core::env::NoFaults`: nothing fires.

use std::collections::{BTreeMap, BTreeSet};

use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;
use seedlog_core::env::{FaultSites, Plant};

pub struct SimFaults {
    enabled: bool,
    activation_probability: f64,
    fire_probability: f64,
    rng: ChaCha8Rng,
    activated: BTreeMap<&'static str, bool>,
    fired: BTreeMap<&'static str, u64>,
    plants: BTreeSet<Plant>,
}

impl SimFaults {
    pub fn new(enabled: bool, plants: BTreeSet<Plant>, rng: ChaCha8Rng) -> SimFaults {
        SimFaults {
            enabled,
            activation_probability: 0.25,
            fire_probability: 0.05,
            rng,
            activated: BTreeMap::new(),
            fired: BTreeMap::new(),
            plants,
        }
    }

    /// How often each site fired in this run.
    pub fn fired(&self) -> &BTreeMap<&'static str, u64> {
        &self.fired
    }

    fn draw(&mut self, probability: f64) -> bool {
        // 53 random bits, as a uniform float in [0, 1).
        let unit = (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        unit < probability
    }
}

impl FaultSites for SimFaults {
    fn buggify(&mut self, site: &'static str) -> bool {
        if !self.enabled {
            return false;
        }
        let active = match self.activated.get(site) {
            Some(active) => *active,
            None => {
                let active = self.draw(self.activation_probability);
                self.activated.insert(site, active);
                active
            }
        };
        if active && self.draw(self.fire_probability) {
            *self.fired.entry(site).or_default() += 1;
            return true;
        }
        false
    }

    fn planted(&self, bug: Plant) -> bool {
        self.plants.contains(&bug)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::SeedableRng;

    #[test]
    fn disabled_never_fires_and_plants_are_reported() {
        let plants = BTreeSet::from([Plant::AckBeforeSync]);
        let mut faults = SimFaults::new(false, plants, ChaCha8Rng::seed_from_u64(1));
        assert!((0..10_000).all(|_| !faults.buggify("site")));
        assert!(faults.planted(Plant::AckBeforeSync));
        assert!(!faults.planted(Plant::RecoverySkipsCrc));
    }

    #[test]
    fn an_activated_site_fires_sometimes_and_activation_is_per_site() {
        let mut some_site_fired = false;
        let mut some_site_never_fired = false;
        for seed in 0..32 {
            let mut faults = SimFaults::new(true, BTreeSet::new(), ChaCha8Rng::seed_from_u64(seed));
            let fires = (0..2_000).filter(|_| faults.buggify("site")).count();
            some_site_fired |= fires > 0;
            some_site_never_fired |= fires == 0;
            assert!(fires < 400, "fires about 5% of the time when active, got {fires}/2000");
        }
        assert!(some_site_fired && some_site_never_fired);
    }
}
