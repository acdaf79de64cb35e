//! grrm-actors
