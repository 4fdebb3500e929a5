//! berth-image
