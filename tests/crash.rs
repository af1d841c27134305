//! The crash matrix: the operator binary is killed (abort, as SIGKILL: nothing flushed) at every
//! external-write boundary, restarted without the failpoint, and must converge with the invariants
//! intact. AzureAppRegistration: during a rotation. EmailChannel (Api mode): during the channel's
//! creation and during a forced rotation. Prints a table of failpoints × outcome per kind and
//! writes both to `target/reports/crash-matrix.md`.

mod support;

use std::time::Duration;

use connect_email_operator::api::{AzureAppRegistration, EmailChannel};
use connect_email_operator::failpoint;
use connect_email_sim::routes;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;
use support::channel;
use support::operator::{Harness, TENANT};
use support::process::OperatorProcess;
use support::resources::{registration_settled, smtp_registration};
use support::*;

/// The Secret's client secret, if the token endpoint accepts it for the app.
async fn secret_works(h: &Harness) -> Result<String, String> {
    channel::secret_accepted(h, "crashy-credentials").await.map(|(client_id, _)| client_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_rotation_step_converges_without_leaks_duplicates_or_outage() {
    let _serial = SERIAL.lock().await;
    let mut table = vec![format!(
        "| {:<40} | {:<8} | {:<9} | {:<6} | {:<12} | {:<8} |",
        "failpoint", "crashed", "apps", "pwds", "secret valid", "verified"
    )];
    table.push(format!("|{:-<42}|{:-<10}|{:-<11}|{:-<8}|{:-<14}|{:-<10}|", "", "", "", "", "", ""));
    let mut failures = Vec::new();
    // CRASH_ONLY=<failpoint> runs one row (for debugging).
    let only = std::env::var("CRASH_ONLY").ok();
    for point in failpoint::ALL.iter().filter(|p| only.as_deref().is_none_or(|o| o == **p)) {
        let h = Harness::without_operator(&format!("crash-{}", point.rsplit('/').next().unwrap())).await;
        let api: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
        // 1. A healthy start.
        let mut op = OperatorProcess::spawn(&h.ns.name, &h.sim, &[], "1-healthy");
        api.patch(
            "crashy",
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&smtp_registration("crashy", "Crash test")),
        )
        .await
        .unwrap();
        let first = registration_settled(&h, "crashy", None, Duration::from_secs(90)).await;
        let first_key = first.status.unwrap().credential.unwrap().key_id;
        op.kill();
        // Logs written to a file carry no terminal colour codes.
        assert!(!op.logs().contains('\u{1b}'), "ANSI escape codes in a log file");

        // 2. A rotation that dies at the failpoint.
        let mut op = OperatorProcess::spawn(&h.ns.name, &h.sim, &[point], "2-crash");
        let rotate = json!({"metadata": {"annotations": {"connectemail.dev/rotate": "crash"}}});
        api.patch("crashy", &PatchParams::default(), &Patch::Merge(&rotate)).await.unwrap();
        let crashed = op.wait_exit(Duration::from_secs(60)).await.is_some();
        let valid_at_crash = secret_works(&h).await.is_ok();
        let mut logs = op.logs();

        // 3. Restart and converge.
        let mut op = OperatorProcess::spawn(&h.ns.name, &h.sim, &[], "3-restart");
        let done = registration_settled(&h, "crashy", Some(&first_key), Duration::from_secs(90)).await;
        let status = done.status.unwrap();
        let apps = h.sim.applications(TENANT);
        let passwords: Vec<String> = apps.iter().flat_map(|a| a.passwords.iter().map(|p| p.key_id.clone())).collect();
        let valid_after = secret_works(&h).await;
        // The old password was removed only after a successful token request for the new one.
        let calls = h.sim.calls();
        let app_id = apps.first().map(|a| a.app_id.clone()).unwrap_or_default();
        let last_add = calls.iter().rposition(|c| c.route == routes::ADD_PASSWORD).unwrap_or(0);
        let verified_before_revoke =
            calls.iter().enumerate().filter(|(i, c)| *i > last_add && c.route == routes::REMOVE_PASSWORD).all(
                |(i, _)| {
                    calls[last_add..i].iter().any(|c| {
                        c.route == routes::TOKEN && c.status == 200 && c.client_id.as_deref() == Some(app_id.as_str())
                    })
                },
            );
        logs.push_str(&op.logs());
        let leaked = h.sim.issued_secrets().iter().any(|s| logs.contains(s.as_str()));

        table.push(format!(
            "| {:<40} | {:<8} | {:<9} | {:<6} | {:<12} | {:<8} |",
            point,
            crashed,
            apps.len(),
            passwords.len(),
            valid_at_crash && valid_after.is_ok(),
            verified_before_revoke
        ));
        let mut problems = Vec::new();
        if !crashed {
            problems.push("the failpoint was not reached".to_string())
        }
        if apps.len() != 1 {
            problems.push(format!("{} applications", apps.len()))
        }
        if passwords != vec![status.credential.as_ref().unwrap().key_id.clone()] {
            problems.push(format!("passwords left {passwords:?}, current {:?}", status.credential))
        }
        if !valid_at_crash {
            problems.push("the Secret held no working credential at the crash".into())
        }
        if let Err(e) = &valid_after {
            problems.push(format!("the Secret does not work after convergence: {e}"))
        }
        if !verified_before_revoke {
            let trace: Vec<String> =
                calls.iter().map(|c| format!("{} {} {:?}", c.route, c.status, c.client_id)).collect();
            problems.push(format!("a password was revoked before its successor was verified:\n{}", trace.join("\n")))
        }
        if leaked {
            problems.push("a secret value appeared in the operator's logs".into())
        }
        if !problems.is_empty() {
            failures.push(format!("{point}: {}", problems.join("; ")));
        }

        api.delete("crashy", &DeleteParams::default()).await.unwrap();
        eventually(Duration::from_secs(30), || {
            let api = api.clone();
            async move {
                if api.get_opt("crashy").await.map_err(|e| e.to_string())?.is_none() {
                    Ok(())
                } else {
                    Err("not deleted".to_string())
                }
            }
        })
        .await;
        op.kill();
        h.finish().await;
    }
    let report =
        format!("Crash matrix (AzureAppRegistration, forced rotation, revokeAfter 0s):\n{}\n", table.join("\n"));
    write_report_section("1-app-registration", &report);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The matrices run one at a time: each drives an operator process, and the machine is small.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Prints one matrix and (re)writes `target/reports/crash-matrix.md` from every section written
/// so far, in name order (scripts/test prints the reports at the end of the run: cargo hides a
/// passing test's output).
fn write_report_section(section: &str, text: &str) {
    println!("\n{text}");
    let dir = repo_root().join("target/reports");
    let sections = dir.join(".crash-matrix");
    std::fs::create_dir_all(&sections).unwrap();
    std::fs::write(sections.join(format!("{section}.md")), text).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&sections).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    let all: Vec<String> = names.iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    std::fs::write(dir.join("crash-matrix.md"), all.join("\n")).unwrap();
}

// ---------------------------------------------------------------------------------------------
// EmailChannel (Api mode)

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Creation,
    Rotation,
}

/// Where each channel failpoint lies: the Exchange writes happen when the mailbox is first
/// configured, never in a rotation (the forwarding address and SMTP AUTH do not change).
fn reached_in(point: &str, phase: Phase) -> bool {
    phase == Phase::Creation || !point.contains("-set-")
}

/// Runs `phase` with `point` armed until the operator aborts, restarts it without the failpoint,
/// waits for convergence and checks the invariants. Returns the row and its problems.
async fn crash_channel(h: &Harness, point: &str, phase: Phase, log_name: &str) -> (Vec<String>, Vec<String>) {
    let first_key = match phase {
        Phase::Creation => None,
        Phase::Rotation => channel::stored_secret(h).await.map(|(_, _, key)| key),
    };
    let since = channel::mark(h);
    let mut op =
        OperatorProcess::spawn_for_channels(&h.ns.name, &h.sim, &h.connect, &[point], &format!("{log_name}-crash"));
    match phase {
        Phase::Creation => channel::apply(h).await,
        Phase::Rotation => channel::rotate(h, "crash").await,
    }
    // Every failpoint lies before Ready, so the person's sign-in is not needed to reach it.
    let crashed = op.wait_exit(Duration::from_secs(60)).await.is_some()
        && op.logs().contains(&format!("failpoint {point}: aborting"));
    let valid_at_crash = channel::secret_works_or_absent(h).await;
    let mut logs = op.logs();

    let mut op =
        OperatorProcess::spawn_for_channels(&h.ns.name, &h.sim, &h.connect, &[], &format!("{log_name}-restart"));
    let done = channel::converged(h, first_key.as_deref(), Duration::from_secs(120)).await;
    logs.push_str(&op.logs());
    let invariants = channel::Invariants::check(h, done, phase == Phase::Rotation, since, &logs).await;
    op.kill();

    let mut problems = invariants.problems.clone();
    if !crashed {
        problems.insert(0, "the failpoint was not reached".to_string())
    }
    if !valid_at_crash {
        problems.insert(0, "the Secret held no working credential at the crash".into())
    }
    let mut row = vec![point.to_string(), format!("{phase:?}"), crashed.to_string(), valid_at_crash.to_string()];
    row.extend(invariants.cells());
    (row, problems)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_every_channel_step_converges_with_connect_holding_the_current_secret() {
    let _serial = SERIAL.lock().await;
    let mut header = vec!["failpoint", "phase", "crashed", "valid at crash"];
    header.extend(channel::Invariants::HEADER);
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let only = std::env::var("CRASH_ONLY").ok();
    for point in failpoint::CHANNEL.iter().filter(|p| only.as_deref().is_none_or(|o| o == **p)) {
        let short = point.rsplit('/').next().unwrap();
        let h = Harness::without_operator(&format!("crash-ch-{short}")).await;
        channel::prepare(&h).await;
        for phase in [Phase::Creation, Phase::Rotation] {
            if !reached_in(point, phase) {
                let mut row = vec![point.to_string(), format!("{phase:?}"), "n/a (not on this path)".into()];
                row.resize(header.len(), String::new());
                rows.push(row);
                continue;
            }
            let (row, problems) = crash_channel(&h, point, phase, &format!("{short}-{phase:?}")).await;
            rows.push(row);
            if !problems.is_empty() {
                failures.push(format!("{point} ({phase:?}): {}", problems.join("; ")));
            }
        }
        // Deletion with an operator running (finalizers), then the namespace.
        let mut op =
            OperatorProcess::spawn_for_channels(&h.ns.name, &h.sim, &h.connect, &[], &format!("{short}-cleanup"));
        let channels: Api<EmailChannel> = Api::namespaced(h.client.clone(), &h.ns.name);
        let registrations: Api<AzureAppRegistration> = Api::namespaced(h.client.clone(), &h.ns.name);
        let _ = channels.delete(channel::CHANNEL, &DeleteParams::default()).await;
        eventually(Duration::from_secs(60), || {
            let (channels, registrations) = (channels.clone(), registrations.clone());
            async move {
                let left = channels.get_opt(channel::CHANNEL).await.map_err(|e| e.to_string())?.is_some()
                    || registrations.get_opt(channel::CHANNEL).await.map_err(|e| e.to_string())?.is_some();
                if left { Err("not deleted".to_string()) } else { Ok(()) }
            }
        })
        .await;
        op.kill();
        h.finish().await;
    }
    let report = format!(
        "Crash matrix (EmailChannel, Api mode, revokeAfter 0s; each failpoint during the channel's creation and during a forced rotation):\n{}\n",
        channel::table(&header, &rows)
    );
    write_report_section("2-email-channel", &report);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
