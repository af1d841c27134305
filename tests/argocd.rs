//! The Argo CD health checks (Lua, `resource.customizations.health` format) run in a real Lua
//! interpreter on Healthy / Progressing / Degraded / Suspended samples, and name only reasons the
//! operator really sets.

mod support;

use connect_email_operator::api::conditions::reason;
use support::repo_root;

#[test]
fn the_lua_health_checks_classify_the_samples() {
    let output = std::process::Command::new("lua5.4")
        .arg(repo_root().join("deploy/argocd/health_test.lua"))
        .output()
        .expect("lua5.4 is installed (.ci/run installs it: apt-get install lua5.4)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("all health checks behave"), "{stdout}");
}

#[test]
fn the_lua_health_checks_only_name_real_condition_reasons() {
    for script in ["emailchannel.lua", "azureappregistration.lua"] {
        let text = std::fs::read_to_string(repo_root().join("deploy/argocd").join(script)).unwrap();
        let table = text.split("local degraded = {").nth(1).unwrap().split('}').next().unwrap();
        for name in table.split(',').map(|e| e.split('=').next().unwrap().trim()).filter(|n| !n.is_empty()) {
            assert!(reason::ALL.contains(&name), "{script} names {name:?}, which the operator never sets");
        }
    }
}
