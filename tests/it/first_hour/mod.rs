//! The first hour of a new operator (issue 14): help that teaches, errors that
//! name their cause, the configuration shown and checked, and the README's
//! quick start run as written.

mod config;
mod errors;
mod help;
mod quickstart;
