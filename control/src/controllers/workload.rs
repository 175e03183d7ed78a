//! Controllers of workloads: what keeps pods running for Deployments,
//! ReplicaSets, DaemonSets, Jobs and CronJobs, and cleans finished Jobs up.

pub mod cron_job;
pub mod daemon_set;
pub mod deployment;
pub mod job;
pub mod pod_control;
pub mod replica_set;
pub mod ttl_after_finished;
pub mod typed;
