//! Printers for the `batch` kinds: Job and CronJob.

use crate::json::Pointer as _;
use jiff::Timestamp;
use serde_json::Value;

use super::labels::format_label_selector;
use super::{
    AGE, CONTAINERS, Column, IMAGES, NAME, Printer, age_cell, arr_at, container_cells,
    human_duration, int_at, is_set, name_cell, opt_bool, opt_int, opt_str, since, str_at,
    timestamp_at,
};

pub(super) const JOB: Printer = Printer {
    columns: &[
        NAME,
        Column::new("Status", "string", "Status of the job."),
        Column::new(
            "Completions",
            "string",
            "The number of pods which reached phase Succeeded. The value increases monotonically for a given spec. However, it may decrease in reaction to scale down of elastic indexed jobs.",
        ),
        Column::new("Duration", "string", "Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::new("Selector", "string", JOB_SELECTOR_DOC).wide(),
    ],
    cells: job_cells,
};

pub(super) const CRON_JOB: Printer = Printer {
    columns: &[
        NAME,
        Column::new(
            "Schedule",
            "string",
            "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron.",
        ),
        Column::new(
            "Timezone",
            "string",
            "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones. If not specified, this will default to the time zone of the kube-controller-manager process. The set of valid time zone names and the time zone offset is loaded from the system-wide time zone database by the API server during CronJob validation and the controller manager during execution. If no system-wide time zone database can be found a bundled version of the database is used instead. If the time zone name becomes invalid during the lifetime of a CronJob or due to a change in host configuration, the controller will stop creating new new Jobs and will create a system event with the reason UnknownTimeZone. More information can be found in https://kubernetes.io/docs/concepts/workloads/controllers/cron-jobs/#time-zones",
        ),
        Column::new(
            "Suspend",
            "boolean",
            "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions.  Defaults to false.",
        ),
        Column::new(
            "Active",
            "integer",
            "A list of pointers to currently running jobs.",
        ),
        Column::new(
            "Last Schedule",
            "string",
            "Information when was the last time the job was successfully scheduled.",
        ),
        AGE,
        CONTAINERS,
        IMAGES,
        Column::new("Selector", "string", JOB_SELECTOR_DOC).wide(),
    ],
    cells: cron_job_cells,
};

const JOB_SELECTOR_DOC: &str = "A label query over pods that should match the pod count. Normally, the system sets this field for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors";

/// `printJob`: NAME STATUS COMPLETIONS DURATION AGE | CONTAINERS IMAGES SELECTOR.
fn job_cells(job: &Value, now: Timestamp) -> Vec<Value> {
    let succeeded = int_at(job, "/status/succeeded");
    let completions = match opt_int(job, "/spec/completions") {
        Some(completions) => format!("{succeeded}/{completions}"),
        None => match opt_int(job, "/spec/parallelism").unwrap_or(0) {
            parallelism if parallelism > 1 => format!("{succeeded}/1 of {parallelism}"),
            _ => format!("{succeeded}/1"),
        },
    };

    let duration = match (
        timestamp_at(job, "/status/startTime"),
        timestamp_at(job, "/status/completionTime"),
    ) {
        (None, _) => String::new(),
        (Some(start), None) => since(Some(start), now),
        (Some(start), Some(end)) => human_duration(end.duration_since(start)),
    };

    let conditions = arr_at(job, "/status/conditions");
    let status = if has_condition(conditions, "Complete") {
        "Complete"
    } else if has_condition(conditions, "Failed") {
        "Failed"
    } else if is_set(job, "/metadata/deletionTimestamp") {
        "Terminating"
    } else if has_condition(conditions, "Suspended") {
        "Suspended"
    } else if has_condition(conditions, "FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };

    let (containers, images) = container_cells(arr_at(job, "/spec/template/spec/containers"));
    vec![
        name_cell(job),
        Value::from(status),
        Value::from(completions),
        Value::from(duration),
        age_cell(job, now),
        containers,
        images,
        Value::from(format_label_selector(job.at("/spec/selector"))),
    ]
}

/// `hasJobCondition`: whether the first condition of type `ty` is `True`.
fn has_condition(conditions: &[Value], ty: &str) -> bool {
    conditions
        .iter()
        .find(|c| str_at(c, "/type") == ty)
        .is_some_and(|c| str_at(c, "/status") == "True")
}

/// `printCronJob`: NAME SCHEDULE TIMEZONE SUSPEND ACTIVE LAST SCHEDULE AGE |
/// CONTAINERS IMAGES SELECTOR.
fn cron_job_cells(cj: &Value, now: Timestamp) -> Vec<Value> {
    let last_schedule = if is_set(cj, "/status/lastScheduleTime") {
        since(timestamp_at(cj, "/status/lastScheduleTime"), now)
    } else {
        "<none>".to_string()
    };
    let time_zone = opt_str(cj, "/spec/timeZone").unwrap_or("<none>");
    // Kubernetes defaults `suspend` to false on write; the cell is a string.
    let suspend = if opt_bool(cj, "/spec/suspend") == Some(true) {
        "True"
    } else {
        "False"
    };
    let (containers, images) = container_cells(arr_at(
        cj,
        "/spec/jobTemplate/spec/template/spec/containers",
    ));
    vec![
        name_cell(cj),
        Value::from(str_at(cj, "/spec/schedule")),
        Value::from(time_zone),
        Value::from(suspend),
        Value::from(arr_at(cj, "/status/active").len()),
        Value::from(last_schedule),
        age_cell(cj, now),
        containers,
        images,
        Value::from(format_label_selector(
            cj.at("/spec/jobTemplate/spec/selector"),
        )),
    ]
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn now() -> Timestamp {
        "2024-05-01T12:00:00Z".parse().unwrap()
    }

    fn job(spec: Value, status: Value) -> Value {
        let mut spec = spec;
        spec["template"] = json!({"spec": {"containers": [{"name": "task", "image": "batch:v2"}]}});
        spec["selector"] = json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "1234"}});
        json!({
            "metadata": {"name": "report", "creationTimestamp": "2024-05-01T11:50:00Z"},
            "spec": spec,
            "status": status,
        })
    }

    #[test]
    fn complete_job() {
        let j = job(
            json!({"completions": 1, "parallelism": 1}),
            json!({
                "succeeded": 1,
                "startTime": "2024-05-01T11:50:00Z",
                "completionTime": "2024-05-01T11:50:42Z",
                "conditions": [
                    {"type": "SuccessCriteriaMet", "status": "True"},
                    {"type": "Complete", "status": "True"},
                ],
            }),
        );
        assert_eq!(
            job_cells(&j, now()),
            vec![
                json!("report"),
                json!("Complete"),
                json!("1/1"),
                json!("42s"),
                json!("10m"),
                json!("task"),
                json!("batch:v2"),
                json!("batch.kubernetes.io/controller-uid=1234"),
            ]
        );
    }

    #[test]
    fn running_and_failed_jobs() {
        let running = job(
            json!({"parallelism": 3}),
            json!({"active": 3, "startTime": "2024-05-01T11:57:30Z"}),
        );
        assert_eq!(
            job_cells(&running, now())[1..4],
            [json!("Running"), json!("0/1 of 3"), json!("2m30s")]
        );
        let failed = job(
            json!({"completions": 5}),
            json!({"succeeded": 2, "conditions": [{"type": "Failed", "status": "True"}]}),
        );
        assert_eq!(
            job_cells(&failed, now())[1..4],
            [json!("Failed"), json!("2/5"), json!("")]
        );
        let suspended = job(
            json!({}),
            json!({"conditions": [{"type": "Suspended", "status": "True"}]}),
        );
        assert_eq!(
            job_cells(&suspended, now())[1..3],
            [json!("Suspended"), json!("0/1")]
        );
        let mut deleting = suspended.clone();
        deleting["metadata"]["deletionTimestamp"] = json!("2024-05-01T11:59:00Z");
        assert_eq!(job_cells(&deleting, now())[1], json!("Terminating"));
    }

    #[test]
    fn cron_jobs() {
        let cj = json!({
            "metadata": {"name": "nightly", "creationTimestamp": "2024-04-21T12:00:00Z"},
            "spec": {
                "schedule": "0 3 * * *",
                "timeZone": "Etc/UTC",
                "jobTemplate": {"spec": {"template": {"spec": {"containers": [
                    {"name": "backup", "image": "backup:v1"},
                ]}}}},
            },
            "status": {
                "active": [{"kind": "Job", "name": "nightly-28570000"}],
                "lastScheduleTime": "2024-05-01T03:00:00Z",
            },
        });
        assert_eq!(
            cron_job_cells(&cj, now()),
            vec![
                json!("nightly"),
                json!("0 3 * * *"),
                json!("Etc/UTC"),
                json!("False"),
                json!(1),
                json!("9h"),
                json!("10d"),
                json!("backup"),
                json!("backup:v1"),
                json!("<none>"),
            ]
        );
        let bare = json!({"spec": {"schedule": "@hourly", "suspend": true}});
        assert_eq!(
            cron_job_cells(&bare, now())[2..6],
            [json!("<none>"), json!("True"), json!(0), json!("<none>")]
        );
    }
}
