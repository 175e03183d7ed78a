//! Jobs and CronJobs end to end on a real cluster (a control plane and a
//! `skiff node` process) driven by the real kubectl: a Job runs its
//! completions no more than `parallelism` at a time and completes as
//! `kubectl wait` and `kubectl get` expect; a failing Job stops at its backoff
//! limit, a slow one at its deadline; a suspended one waits; a CronJob runs every minute and keeps
//! only its history limit of Jobs; `kubectl create job --from=cronjob` runs
//! the template at once; a finished Job with a TTL goes with its pods.

use skiff_testkit::cluster;
use skiff_testkit::node;
use skiff_testkit::objects;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cluster::{Kubectl, Server, Skiff};
use node::NodeProcess;
use objects::{apply, condition, get_json, push_samples, token, wait_node_ready};
use serde_json::Value;

/// How long a Job may take on two busy cores: pulls, compiles and back-offs
/// included, still far more than it needs.
const JOB_DEADLINE: Duration = Duration::from_secs(120);
/// A CronJob's second run comes one to two minutes after it is created.
const CRON_DEADLINE: Duration = Duration::from_secs(240);

/// A control plane and one node.
struct Cluster {
    server: Server,
    kubectl: Kubectl,
    _node: NodeProcess,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start(samples: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start(&dir.path().join("cp"));
        let kubectl = Kubectl::new(&server.kubeconfig());
        let skiff = Skiff::new(&server.kubeconfig());
        push_samples(&skiff, samples);
        let token = token(&skiff);
        let node = NodeProcess::start(
            server.quic_addr(),
            "n1",
            &dir.path().join("n1"),
            Some(&token),
            &[],
        );
        wait_node_ready(&server, "n1");
        Cluster {
            server,
            kubectl,
            _node: node,
            dir,
        }
    }

    fn apply(&self, name: &str, yaml: &str) {
        apply(&self.kubectl, self.dir.path(), name, yaml);
    }

    fn job(&self, name: &str) -> Option<Value> {
        get_json(
            &self.server,
            &format!("/apis/batch/v1/namespaces/default/jobs/{name}"),
        )
    }

    fn jobs(&self) -> Vec<Value> {
        items(get_json(
            &self.server,
            "/apis/batch/v1/namespaces/default/jobs",
        ))
    }

    /// The pods of Job `job`, by the label the Job controller's pods carry.
    fn pods_of(&self, job: &str) -> Vec<Value> {
        items(get_json(
            &self.server,
            &format!(
                "/api/v1/namespaces/default/pods?labelSelector=batch.kubernetes.io%2Fjob-name%3D{job}"
            ),
        ))
    }

    /// The reasons of the Events about `name`.
    fn event_reasons(&self, name: &str) -> Vec<String> {
        items(get_json(&self.server, "/api/v1/namespaces/default/events"))
            .into_iter()
            .filter(|e| e["involvedObject"]["name"] == name)
            .filter_map(|e| e["reason"].as_str().map(str::to_string))
            .collect()
    }

    /// Waits until Events about `name` with each of `reasons` exist (Events
    /// are written in the background); returns every reason seen.
    fn wait_events(&self, name: &str, reasons: &[&str]) -> Vec<String> {
        wait_long(
            &format!("Events {reasons:?} about {name}"),
            JOB_DEADLINE,
            || {
                let seen = self.event_reasons(name);
                reasons
                    .iter()
                    .all(|r| seen.iter().any(|s| s == r))
                    .then_some(seen)
            },
        )
    }

    /// Waits until Job `name` has condition `kind` True; returns the Job.
    fn wait_job_condition(&self, name: &str, kind: &str) -> Value {
        wait_long(&format!("job {name} is {kind}"), JOB_DEADLINE, || {
            let job = self.job(name)?;
            (condition(&job, kind).as_deref() == Some("True")).then_some(job)
        })
    }
}

fn items(list: Option<Value>) -> Vec<Value> {
    list.and_then(|l| l["items"].as_array().cloned())
        .unwrap_or_default()
}

fn name_of(obj: &Value) -> String {
    obj["metadata"]["name"].as_str().unwrap_or("").to_string()
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("")
}

/// Running or about to: not finished and not being deleted.
fn is_active(pod: &Value) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod["metadata"]["deletionTimestamp"].is_null()
}

fn reason_of(job: &Value, kind: &str) -> String {
    job["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["type"] == kind)
        .and_then(|c| c["reason"].as_str())
        .unwrap_or("")
        .to_string()
}

/// Polls `check` until it returns `Some` or `deadline` passes (a panic).
fn wait_long<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            Instant::now() < until,
            "timed out after {deadline:?} waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Samples how many pods of a Job are active until stopped; keeps the most.
struct ActivePeak {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicUsize>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ActivePeak {
    fn watch(server: &Server, job: &str) -> ActivePeak {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicUsize::new(0));
        let (s, p, api) = (stop.clone(), peak.clone(), server.api());
        let path = format!(
            "/api/v1/namespaces/default/pods?labelSelector=batch.kubernetes.io%2Fjob-name%3D{job}"
        );
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Ok((200, body)) = api.get(&path)
                    && let Ok(list) = serde_json::from_str::<Value>(&body)
                {
                    let active = items(Some(list)).iter().filter(|p| is_active(p)).count();
                    p.fetch_max(active, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        });
        ActivePeak {
            stop,
            peak,
            thread: Some(thread),
        }
    }

    fn peak(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

/// A Job of `pi` printing `digits` decimals.
fn pi_job(name: &str, extra_spec: &str, digits: u32) -> String {
    format!(
        "apiVersion: batch/v1
kind: Job
metadata:
  name: {name}
spec:
{extra_spec}  template:
    spec:
      restartPolicy: Never
      containers:
      - name: pi
        image: pi:v1
        args: [\"{digits}\"]
"
    )
}

#[test]
fn a_job_completes_its_completions_no_more_than_parallelism_at_a_time() {
    let cluster = Cluster::start(&["pi"]);
    let kubectl = &cluster.kubectl;
    // Enough digits that a pod runs for a noticeable while.
    cluster.apply(
        "pi",
        &pi_job("pi", "  completions: 5\n  parallelism: 2\n", 15_000),
    );
    let peak = ActivePeak::watch(&cluster.server, "pi");
    let mut wait = kubectl.spawn(&[
        "wait",
        "--for=condition=complete",
        "job/pi",
        "--timeout=300s",
    ]);
    let job = cluster.wait_job_condition("pi", "Complete");
    let peak = peak.peak();
    assert!(peak <= 2, "{peak} pods were active at once");
    assert_eq!(peak, 2, "the Job ran two pods at once");
    wait.wait_for_line("kubectl wait reports the condition", |l| {
        l == "job.batch/pi condition met"
    });

    // Five pods succeeded, no more were made, and the status says so.
    let pods = cluster.pods_of("pi");
    assert_eq!(pods.len(), 5, "{pods:?}");
    assert!(pods.iter().all(|p| phase(p) == "Succeeded"), "{pods:?}");
    assert!(
        pods.iter().all(|p| p["metadata"]["finalizers"]
            .as_array()
            .is_none_or(Vec::is_empty)),
        "every pod is counted and released: {pods:?}"
    );
    let status = &job["status"];
    assert_eq!(status["succeeded"], 5, "{status}");
    assert!(status["failed"].is_null(), "{status}");
    assert!(status["active"].is_null(), "{status}");
    assert_eq!(status["ready"], 0);
    assert_eq!(status["uncountedTerminatedPods"], serde_json::json!({}));
    assert!(status["startTime"].is_string() && status["completionTime"].is_string());
    assert_eq!(
        condition(&job, "SuccessCriteriaMet").as_deref(),
        Some("True")
    );
    assert_eq!(reason_of(&job, "Complete"), "CompletionsReached");

    // What a user sees.
    let out = kubectl.run(&["get", "job", "pi"]);
    let lines = out.lines();
    assert_eq!(
        lines[0], "NAME STATUS COMPLETIONS DURATION AGE",
        "{lines:?}"
    );
    assert!(lines[1].starts_with("pi Complete 5/5 "), "{lines:?}");
    let logs = kubectl.ok(&["logs", "job/pi"]);
    assert!(logs.starts_with("3.14159265358979323846"), "{logs:.80}");
    assert_eq!(logs.trim().len(), 15_002, "pi to 15,000 places");
    // One SuccessfulCreate per pod, and no more pods than that.
    cluster.wait_events("pi", &["Completed"]);
    wait_long("five SuccessfulCreate Events", JOB_DEADLINE, || {
        let reasons = cluster.event_reasons("pi");
        let created = reasons.iter().filter(|r| *r == "SuccessfulCreate").count();
        assert!(created <= 5, "{reasons:?}");
        (created == 5).then_some(())
    });

    // Deleting the Job takes its pods along.
    kubectl.ok(&["delete", "job", "pi"]);
    wait_long("the Job's pods are gone", JOB_DEADLINE, || {
        cluster.pods_of("pi").is_empty().then_some(())
    });
}

#[test]
fn a_failing_job_stops_at_its_backoff_limit_and_a_slow_one_at_its_deadline() {
    let cluster = Cluster::start(&["crasher", "ticker"]);
    let kubectl = &cluster.kubectl;
    // Every request traps, so the liveness probe kills the container, and
    // with restartPolicy Never the pod fails.
    cluster.apply(
        "crasher",
        "apiVersion: batch/v1
kind: Job
metadata:
  name: crasher
spec:
  backoffLimit: 1
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: crasher
        image: crasher:v1
        env:
        - {name: CRASH_AT_START, value: \"1\"}
        ports:
        - {name: http, containerPort: 8080}
        livenessProbe:
          httpGet: {path: /healthz, port: http}
          periodSeconds: 1
          failureThreshold: 1
",
    );
    cluster.apply(
        "slow",
        "apiVersion: batch/v1
kind: Job
metadata:
  name: slow
spec:
  activeDeadlineSeconds: 3
  template:
    spec:
      restartPolicy: Never
      terminationGracePeriodSeconds: 1
      containers:
      - name: ticker
        image: ticker:v1
",
    );

    // Two failed pods (the first, and one retry after the back-off): more than
    // backoffLimit 1.
    let job = cluster.wait_job_condition("crasher", "Failed");
    assert_eq!(reason_of(&job, "Failed"), "BackoffLimitExceeded");
    assert_eq!(reason_of(&job, "FailureTarget"), "BackoffLimitExceeded");
    assert_eq!(job["status"]["failed"], 2, "{}", job["status"]);
    assert!(job["status"]["completionTime"].is_null());
    let pods = cluster.pods_of("crasher");
    assert_eq!(pods.len(), 2, "{pods:?}");
    assert!(pods.iter().all(|p| phase(p) == "Failed"), "{pods:?}");
    let out = kubectl.run(&["get", "job", "crasher"]);
    assert!(
        out.lines()[1].starts_with("crasher Failed 0/1 "),
        "{:?}",
        out.lines()
    );
    cluster.wait_events("crasher", &["BackoffLimitExceeded"]);

    // The ticker never exits: past the deadline its pod is deleted and the Job fails.
    let job = cluster.wait_job_condition("slow", "Failed");
    assert_eq!(reason_of(&job, "Failed"), "DeadlineExceeded");
    assert_eq!(job["status"]["failed"], 1, "{}", job["status"]);
    wait_long("the slow Job's pod is gone", JOB_DEADLINE, || {
        cluster.pods_of("slow").is_empty().then_some(())
    });
    cluster.wait_events("slow", &["DeadlineExceeded", "SuccessfulDelete"]);
}

#[test]
fn a_finished_job_with_a_ttl_goes_with_its_pods() {
    let cluster = Cluster::start(&["pi"]);
    cluster.apply(
        "brief",
        &pi_job("brief", "  ttlSecondsAfterFinished: 5\n", 100),
    );
    let job = cluster.wait_job_condition("brief", "Complete");
    let uid = job["metadata"]["uid"].as_str().expect("uid").to_string();
    // The pod is there (counted, released) until the TTL runs out ...
    assert_eq!(cluster.pods_of("brief").len(), 1);
    // ... and then the Job and its pod are gone.
    wait_long("the Job and its pod are gone", JOB_DEADLINE, || {
        (cluster.job("brief").is_none() && cluster.pods_of("brief").is_empty()).then_some(())
    });
    let gone = cluster
        .server
        .api_get("/apis/batch/v1/namespaces/default/jobs/brief")
        .expect("GET the job");
    assert_eq!(gone.0, 404, "{uid} should be deleted: {}", gone.1);
}

#[test]
fn a_suspended_job_runs_no_pods_until_it_is_resumed() {
    let cluster = Cluster::start(&["pi"]);
    let kubectl = &cluster.kubectl;
    cluster.apply("later", &pi_job("later", "  suspend: true\n", 100));
    let job = cluster.wait_job_condition("later", "Suspended");
    assert_eq!(reason_of(&job, "Suspended"), "JobSuspended");
    assert!(job["status"]["startTime"].is_null(), "{}", job["status"]);
    assert!(cluster.pods_of("later").is_empty());
    let out = kubectl.run(&["get", "job", "later"]);
    assert!(
        out.lines()[1].starts_with("later Suspended 0/1 "),
        "{:?}",
        out.lines()
    );

    kubectl.ok(&[
        "patch",
        "job",
        "later",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":false}}"#,
    ]);
    let job = cluster.wait_job_condition("later", "Complete");
    assert_eq!(condition(&job, "Suspended").as_deref(), Some("False"));
    assert_eq!(reason_of(&job, "Suspended"), "JobResumed");
    assert_eq!(job["status"]["succeeded"], 1);
    cluster.wait_events("later", &["Suspended", "Resumed", "Completed"]);
}

#[test]
fn a_cron_job_runs_every_minute_and_keeps_its_history_limit() {
    let cluster = Cluster::start(&["pi"]);
    let kubectl = &cluster.kubectl;
    cluster.apply(
        "cron",
        "apiVersion: batch/v1
kind: CronJob
metadata:
  name: every-minute
spec:
  schedule: \"*/1 * * * *\"
  successfulJobsHistoryLimit: 1
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: pi
            image: pi:v1
            args: [\"50\"]
",
    );
    // A suspended CronJob schedules nothing, but runs on demand.
    cluster.apply(
        "held",
        "apiVersion: batch/v1
kind: CronJob
metadata:
  name: held
spec:
  schedule: \"*/1 * * * *\"
  suspend: true
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: pi
            image: pi:v1
            args: [\"20\"]
",
    );
    let cj = get_json(
        &cluster.server,
        "/apis/batch/v1/namespaces/default/cronjobs/every-minute",
    )
    .expect("the CronJob");
    let cj_uid = cj["metadata"]["uid"].as_str().expect("uid").to_string();

    let owned_by = |job: &Value, uid: &str| {
        job["metadata"]["ownerReferences"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r["uid"] == uid && r["controller"] == true && r["kind"] == "CronJob")
    };
    let finished_runs = || -> Vec<Value> {
        cluster
            .jobs()
            .into_iter()
            .filter(|j| owned_by(j, &cj_uid))
            .filter(|j| condition(j, "Complete").as_deref() == Some("True"))
            .collect()
    };

    // The first run: named by its scheduled minute, annotated, completes.
    let first = wait_long("the first scheduled Job completes", CRON_DEADLINE, || {
        finished_runs().into_iter().next()
    });
    let first_name = name_of(&first);
    let stamp = first["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
        .as_str()
        .expect("the scheduled-timestamp annotation")
        .to_string();
    let scheduled: i64 = stamp
        .parse::<jiff::Timestamp>()
        .expect("an RFC 3339 time")
        .as_second();
    assert_eq!(scheduled % 60, 0, "{stamp}");
    assert_eq!(first_name, format!("every-minute-{}", scheduled / 60));

    // The second run completes, and the first is deleted (history limit 1).
    let second = wait_long(
        "a second run completes and only it is kept",
        CRON_DEADLINE,
        || {
            let runs = finished_runs();
            let all_runs = cluster
                .jobs()
                .into_iter()
                .filter(|j| owned_by(j, &cj_uid))
                .count();
            (runs.len() == 1 && all_runs == 1 && name_of(&runs[0]) != first_name)
                .then(|| runs[0].clone())
        },
    );
    wait_long("the first run's pods are gone", JOB_DEADLINE, || {
        cluster.pods_of(&first_name).is_empty().then_some(())
    });
    let cj = wait_long("the CronJob's status has caught up", JOB_DEADLINE, || {
        let cj = get_json(
            &cluster.server,
            "/apis/batch/v1/namespaces/default/cronjobs/every-minute",
        )?;
        let caught_up = cj["status"]["active"].as_array().is_none_or(Vec::is_empty)
            && cj["status"]["lastSuccessfulTime"].is_string();
        caught_up.then_some(cj)
    });
    let minute_of = |job: &Value| {
        job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
            .as_str()
            .and_then(|s| s.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_second() / 60)
    };
    let second_minute = minute_of(&second).expect("the second run's scheduled time");
    assert!(second_minute > scheduled / 60, "{}", name_of(&second));
    assert_eq!(name_of(&second), format!("every-minute-{second_minute}"));
    let last_schedule: jiff::Timestamp = cj["status"]["lastScheduleTime"]
        .as_str()
        .expect("lastScheduleTime")
        .parse()
        .expect("a time");
    assert!(
        last_schedule.as_second() / 60 >= second_minute,
        "{}",
        cj["status"]
    );
    cluster.wait_events(
        "every-minute",
        &["SuccessfulCreate", "SawCompletedJob", "SuccessfulDelete"],
    );
    let out = kubectl.run(&["get", "cronjob", "every-minute"]);
    assert!(
        out.lines()[1].starts_with("every-minute */1 * * * * <none> False "),
        "{:?}",
        out.lines()
    );

    // `kubectl create job --from=cronjob/...`: the template runs at once.
    kubectl.ok(&["create", "job", "manual", "--from=cronjob/held"]);
    let manual = cluster.wait_job_condition("manual", "Complete");
    let held = get_json(
        &cluster.server,
        "/apis/batch/v1/namespaces/default/cronjobs/held",
    )
    .expect("the held CronJob");
    let held_uid = held["metadata"]["uid"].as_str().expect("uid");
    assert!(owned_by(&manual, held_uid), "{}", manual["metadata"]);
    assert_eq!(
        manual["metadata"]["annotations"]["cronjob.kubernetes.io/instantiate"],
        "manual"
    );
    let scheduled_by_held = cluster
        .jobs()
        .into_iter()
        .filter(|j| owned_by(j, held_uid) && name_of(j) != "manual")
        .count();
    assert_eq!(
        scheduled_by_held, 0,
        "a suspended CronJob schedules nothing"
    );
    assert!(
        held["status"]["lastScheduleTime"].is_null(),
        "{}",
        held["status"]
    );
    let logs = kubectl.ok(&["logs", "job/manual"]);
    assert_eq!(logs.trim(), "3.14159265358979323846");
}
