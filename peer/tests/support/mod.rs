//! Shared helpers of the integration tests.

pub mod adversary;
pub mod fleet;
pub mod listening;
pub mod netns;
pub mod params;
pub mod partition;
pub mod rogue;
pub mod skip;
pub mod states;
pub mod wait;
pub mod work;
