//! grrm-rewards
