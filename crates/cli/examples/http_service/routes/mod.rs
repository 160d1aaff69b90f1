//! The handlers, one file per resource.

pub(crate) mod interviews;
pub(crate) mod job_infos;
pub(crate) mod questions;
pub(crate) mod users;
pub(crate) mod webhook;
