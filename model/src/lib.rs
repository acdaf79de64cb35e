//! grrm-model
