//! The async facade for tokio services (feature `tokio`).
