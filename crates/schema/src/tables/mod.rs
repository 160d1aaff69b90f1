pub(crate) mod interviews;
pub(crate) mod job_info;
pub(crate) mod questions;
pub(crate) mod users;
