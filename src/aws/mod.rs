//! The AWS integration kit: trust policies, their lint, session claims, the
//! provider parameters and the doctor.

pub mod doctor;
pub mod iam;
pub mod lint;
pub mod policy;
pub mod session;
