//! terrakio-operator keeps Terrakio API keys in Kubernetes Secrets.
//!
//! Modules, from the outside in: [`cli`], [`telemetry`], [`server`] and [`metrics`] for the
//! process, [`check`] for the troubleshooting command; [`controller`] wires the watches to
//! [`reconcile`], which does what [`decision`] decides: it gets the key through [`keys`] (the
//! [`terrakio`] client through shared login [`session`]s), writes the [`target`] Secret,
//! records [`status`], [`report`]s Events and logs, and handles [`deletion`].
//! [`schedule`] says when a rotation is due, [`account`] ties together the credentials of one
//! account, and [`restart`] rolls out workloads after the key changed. [`credential`] is the
//! custom resource, [`conditions`] its status vocabulary, and [`sensitive`] the types that
//! keep secrets out of logs.

pub mod account;
pub mod check;
pub mod cli;
pub mod conditions;
pub mod controller;
pub mod credential;
pub mod decision;
pub mod deletion;
pub mod error;
pub mod keys;
pub mod login_secret;
pub mod metrics;
pub mod reconcile;
pub mod report;
pub mod restart;
pub mod schedule;
pub mod sensitive;
pub mod server;
pub mod session;
pub mod status;
pub mod target;
pub mod telemetry;
pub mod terrakio;
