//! grrm-recsys
