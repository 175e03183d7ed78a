//! `batch/v1`: Job and CronJob.

use k8s_openapi::api::batch::v1::{CronJob, Job, JobSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::apps::{check_selector_matches, same_template};
use super::pod::{restart_policy, validate_pod_template};
use super::{Errors, child, cron, duration_seconds, immutable, label_selector, nonnegative};
use crate::status::FieldError;

/// A CronJob's name is a prefix of its Jobs' names (plus an 11-character suffix).
const CRON_JOB_NAME_MAX: usize = 52;

/// Job: Kubernetes' `ValidateJob`. The selector is the server's to generate
/// unless `manualSelector` is set, so an absent one is fine.
pub(crate) fn validate_job(job: &Job, errs: &mut Errors) {
    let default = JobSpec::default();
    let spec = job.spec.as_ref().unwrap_or(&default);
    validate_job_spec(spec, "spec", errs);
    match &spec.selector {
        Some(selector) => {
            label_selector::validate(selector, "spec.selector", errs);
            check_selector_matches(selector, true, &spec.template, errs);
        }
        None if spec.manual_selector == Some(true) => {
            errs.push(FieldError::required("spec.selector", ""))
        }
        None => {}
    }
}

/// Kubernetes' `validateJobSpec`, shared by Jobs and CronJob job templates.
fn validate_job_spec(spec: &JobSpec, path: &str, errs: &mut Errors) {
    nonnegative(spec.parallelism, &child(path, "parallelism"), errs);
    nonnegative(spec.completions, &child(path, "completions"), errs);
    nonnegative(
        spec.active_deadline_seconds,
        &child(path, "activeDeadlineSeconds"),
        errs,
    );
    duration_seconds(
        spec.active_deadline_seconds,
        &child(path, "activeDeadlineSeconds"),
        errs,
    );
    nonnegative(spec.backoff_limit, &child(path, "backoffLimit"), errs);
    nonnegative(
        spec.ttl_seconds_after_finished,
        &child(path, "ttlSecondsAfterFinished"),
        errs,
    );
    nonnegative(
        spec.backoff_limit_per_index,
        &child(path, "backoffLimitPerIndex"),
        errs,
    );
    nonnegative(
        spec.max_failed_indexes,
        &child(path, "maxFailedIndexes"),
        errs,
    );
    match spec.completion_mode.as_deref() {
        None | Some("NonIndexed") => {}
        Some("Indexed") => {
            if spec.completions.is_none() {
                errs.push(FieldError::required(
                    child(path, "completions"),
                    "when completion mode is Indexed",
                ));
            }
        }
        Some(other) => errs.push(FieldError::not_supported(
            child(path, "completionMode"),
            other,
            &["NonIndexed", "Indexed"],
        )),
    }
    if let Some(policy) = spec.pod_replacement_policy.as_deref()
        && policy != "TerminatingOrFailed"
        && policy != "Failed"
    {
        errs.push(FieldError::not_supported(
            child(path, "podReplacementPolicy"),
            policy,
            &["TerminatingOrFailed", "Failed"],
        ));
    }
    let template_path = child(path, "template");
    validate_pod_template(&spec.template, &template_path, errs);
    let policy = restart_policy(&spec.template);
    if policy != "OnFailure" && policy != "Never" {
        errs.push(FieldError::not_supported(
            child(&template_path, "spec.restartPolicy"),
            policy,
            &["OnFailure", "Never"],
        ));
    }
}

/// Kubernetes' `ValidateJobUpdate`: selector, template, completion mode and
/// (outside elastic indexed jobs) completions are fixed.
pub(crate) fn validate_job_update(old: &Job, new: &Job, errs: &mut Errors) {
    let old_spec = old.spec.clone().unwrap_or_default();
    let new_spec = new.spec.clone().unwrap_or_default();
    let empty = LabelSelector::default();
    let new_selector = new_spec.selector.as_ref().unwrap_or(&empty);
    if !label_selector::same(old_spec.selector.as_ref().unwrap_or(&empty), new_selector) {
        errs.push(immutable("spec.selector", super::to_json(new_selector)));
    }
    if !same_template(&old_spec.template, &new_spec.template) {
        errs.push(immutable(
            "spec.template",
            super::to_json(&new_spec.template),
        ));
    }
    let mode = |s: &JobSpec| {
        s.completion_mode
            .clone()
            .unwrap_or_else(|| "NonIndexed".into())
    };
    if mode(&old_spec) != mode(&new_spec) {
        errs.push(immutable("spec.completionMode", mode(&new_spec)));
    }
    let elastic = mode(&new_spec) == "Indexed" && new_spec.completions == new_spec.parallelism;
    if old_spec.completions != new_spec.completions && !elastic {
        errs.push(immutable(
            "spec.completions",
            super::to_json(&new_spec.completions),
        ));
    }
}

/// CronJob: Kubernetes' `ValidateCronJobCreate`.
pub(crate) fn validate_cron_job(cj: &CronJob, errs: &mut Errors) {
    if let Some(name) = cj.metadata.name.as_deref()
        && name.len() > CRON_JOB_NAME_MAX
    {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            format!("must be no more than {CRON_JOB_NAME_MAX} characters"),
        ));
    }
    let default = Default::default();
    let spec = cj.spec.as_ref().unwrap_or(&default);
    if spec.schedule.is_empty() {
        errs.push(FieldError::required("spec.schedule", ""));
    } else {
        if let Err(why) = cron::parse_standard(&spec.schedule) {
            errs.push(FieldError::invalid(
                "spec.schedule",
                spec.schedule.as_str(),
                why.to_string(),
            ));
        }
        if spec.schedule.contains("TZ") {
            errs.push(FieldError::invalid(
                "spec.schedule",
                spec.schedule.as_str(),
                "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
            ));
        }
    }
    nonnegative(
        spec.starting_deadline_seconds,
        "spec.startingDeadlineSeconds",
        errs,
    );
    duration_seconds(
        spec.starting_deadline_seconds,
        "spec.startingDeadlineSeconds",
        errs,
    );
    match spec.concurrency_policy.as_deref() {
        None | Some("Allow") | Some("Forbid") | Some("Replace") => {}
        Some("") => errs.push(FieldError::required("spec.concurrencyPolicy", "")),
        Some(other) => errs.push(FieldError::not_supported(
            "spec.concurrencyPolicy",
            other,
            &["Allow", "Forbid", "Replace"],
        )),
    }
    let job_spec = spec.job_template.spec.clone().unwrap_or_default();
    validate_job_spec(&job_spec, "spec.jobTemplate.spec", errs);
    if let Some(selector) = &job_spec.selector {
        errs.push(FieldError::invalid(
            "spec.jobTemplate.spec.selector",
            super::to_json(selector),
            "`selector` will be auto-generated",
        ));
    }
    if job_spec.manual_selector == Some(true) {
        errs.push(FieldError::not_supported(
            "spec.jobTemplate.spec.manualSelector",
            true,
            &["nil", "false"],
        ));
    }
    nonnegative(
        spec.successful_jobs_history_limit,
        "spec.successfulJobsHistoryLimit",
        errs,
    );
    nonnegative(
        spec.failed_jobs_history_limit,
        "spec.failedJobsHistoryLimit",
        errs,
    );
    if let Some(tz) = spec.time_zone.as_deref() {
        validate_time_zone(tz, errs);
    }
}

/// Kubernetes' `validateTimeZone`, short of loading the zone database.
fn validate_time_zone(tz: &str, errs: &mut Errors) {
    if tz.is_empty() {
        errs.push(FieldError::invalid(
            "spec.timeZone",
            tz,
            "timeZone must be nil or non-empty string",
        ));
        return;
    }
    let part_ok = |p: &str| {
        p != "."
            && p != ".."
            && !p.starts_with('-')
            && (1..=14).contains(&p.len())
            && p.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'+'))
    };
    if !tz.split('/').all(part_ok) {
        errs.push(FieldError::invalid(
            "spec.timeZone",
            tz,
            format!("unknown time zone {tz}"),
        ));
        return;
    }
    if tz.eq_ignore_ascii_case("Local") {
        errs.push(FieldError::invalid(
            "spec.timeZone",
            tz,
            "timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn job(spec: Value) -> Job {
        serde_json::from_value(json!({"metadata": {"name": "pi"}, "spec": spec})).unwrap()
    }

    fn strings(errs: &Errors) -> Vec<String> {
        errs.iter().map(|e| e.to_string()).collect()
    }

    fn template(restart: Option<&str>) -> Value {
        let mut t = json!({"spec": {"containers": [{"name": "pi", "image": "pi:v1"}]}});
        if let Some(r) = restart {
            t["spec"]["restartPolicy"] = json!(r);
        }
        t
    }

    #[test]
    fn jobs() {
        let mut errs = Errors::new();
        validate_job(
            &job(json!({"template": template(Some("Never")), "backoffLimit": 4})),
            &mut errs,
        );
        assert!(errs.is_empty(), "{errs:?}");
        validate_job(
            &job(json!({"template": template(None), "completions": -1, "parallelism": -2})),
            &mut errs,
        );
        assert_eq!(
            strings(&errs),
            [
                "spec.parallelism: Invalid value: -2: must be greater than or equal to 0",
                "spec.completions: Invalid value: -1: must be greater than or equal to 0",
                "spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
            ]
        );
        let mut errs = Errors::new();
        validate_job(
            &job(json!({"template": template(Some("OnFailure")), "manualSelector": true})),
            &mut errs,
        );
        assert_eq!(strings(&errs), ["spec.selector: Required value"]);
    }

    #[test]
    fn job_updates() {
        let old = job(
            json!({"template": template(Some("Never")), "selector": {"matchLabels": {"job": "pi"}}}),
        );
        let mut errs = Errors::new();
        let mut same = old.clone();
        if let Some(s) = same.spec.as_mut() {
            s.suspend = Some(true);
        }
        validate_job_update(&old, &same, &mut errs);
        assert!(errs.is_empty(), "{errs:?}");
        let new = job(json!({"template": template(Some("OnFailure")), "completions": 3}));
        validate_job_update(&old, &new, &mut errs);
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["spec.selector", "spec.template", "spec.completions"]
        );
        assert!(errs[1].to_string().ends_with(": field is immutable"));
    }

    #[test]
    fn cron_jobs() {
        let cj = |spec: Value, name: &str| -> CronJob {
            serde_json::from_value(json!({"metadata": {"name": name}, "spec": spec})).unwrap()
        };
        let good = json!({"schedule": "*/1 * * * *", "jobTemplate": {"spec": {"template": template(Some("OnFailure"))}}});
        let mut errs = Errors::new();
        validate_cron_job(&cj(good, "hello"), &mut errs);
        assert!(errs.is_empty(), "{errs:?}");

        let bad = json!({"schedule": "61 * * *", "concurrencyPolicy": "Sometimes", "timeZone": "Local",
                         "jobTemplate": {"spec": {"template": template(None), "selector": {"matchLabels": {"a": "b"}}}}});
        validate_cron_job(&cj(bad, &"x".repeat(53)), &mut errs);
        assert_eq!(
            strings(&errs),
            [
                format!("metadata.name: Invalid value: \"{}\": must be no more than 52 characters", "x".repeat(53)),
                "spec.schedule: Invalid value: \"61 * * *\": expected exactly 5 fields, found 4: [61 * * *]".to_string(),
                "spec.concurrencyPolicy: Unsupported value: \"Sometimes\": supported values: \"Allow\", \"Forbid\", \"Replace\"".to_string(),
                "spec.jobTemplate.spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"".to_string(),
                "spec.jobTemplate.spec.selector: Invalid value: {\"matchLabels\":{\"a\":\"b\"}}: `selector` will be auto-generated".to_string(),
                "spec.timeZone: Invalid value: \"Local\": timeZone must be an explicit time zone as defined in https://www.iana.org/time-zones".to_string(),
            ]
        );
        let mut errs = Errors::new();
        validate_cron_job(
            &cj(
                json!({"jobTemplate": {"spec": {"template": template(Some("Never"))}}}),
                "c",
            ),
            &mut errs,
        );
        assert_eq!(strings(&errs), ["spec.schedule: Required value"]);
    }
}
