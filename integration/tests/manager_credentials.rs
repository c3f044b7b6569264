//! Docker credential helpers end to end: with `credsStore` in the docker
//! config, `hullctl login` stores the secret through the helper (never in
//! the file), a pull from a token-auth registry gets the credentials from
//! it (hullctl runs the helper and sends hulld that one registry's
//! credentials), and `hullctl logout` erases them.

use hull_integration::manager::{
    have_registry, Auth, Hulld, Registry, IDENTITY_TOKEN, PASSWORD, USER,
};
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A credential store in files next to the script (one JSON record per
/// server), logging each action it is asked for.
const HELPER: &str = include_str!("../../hack/registry/docker-credential-test");

/// What the helper's store holds, all records together.
fn stored(store: &Path) -> String {
    std::fs::read_dir(store)
        .into_iter()
        .flatten()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect()
}

/// `docker-credential-<name>` with `script` in a bin dir of `d`'s, and the
/// PATH that finds it first.
fn helper_on_path(d: &Hulld, name: &str, script: &str) -> (PathBuf, OsString) {
    let bin = d.dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join(format!("docker-credential-{name}"));
    std::fs::write(&helper, script).unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut path = OsString::from(&bin);
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    (helper, path)
}

#[test]
fn login_pull_and_logout_through_a_credential_helper() {
    if !hull_integration::require_root() || !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::Token);
    let image = reg.push("small", "small:latest");
    let d = Hulld::start("");
    let (helper, path) = helper_on_path(&d, "test", HELPER);
    let bin = helper.parent().unwrap();
    let store = bin.join("docker-credential-test.store");
    let config = d.dir.join("home/.docker/config.json");
    std::fs::write(&config, r#"{"credsStore":"test"}"#).unwrap();
    let env = [("PATH", path.as_os_str())];

    // Without the helper on PATH, hullctl says what is missing.
    let missing = d.ctl(&["pull", &image]).fails();
    assert!(
        missing
            .stderr
            .contains("docker-credential-test is not on PATH"),
        "{missing:?}"
    );

    let login = [
        "login",
        "--username",
        USER,
        "--password-stdin",
        &reg.address,
    ];
    let out = d.ctl_env(&login, &env, &format!("{PASSWORD}\n")).ok();
    assert!(out.stdout.contains("docker-credential-test"), "{out:?}");
    assert!(
        stored(&store).contains(PASSWORD),
        "the helper has the secret"
    );
    let file = std::fs::read_to_string(&config).unwrap();
    assert!(
        !file.contains(PASSWORD) && file.contains(&reg.address),
        "only an empty entry in the file: {file}"
    );

    d.ctl_env(&["pull", "-q", &image], &env, "").ok();
    let log = std::fs::read_to_string(bin.join("docker-credential-test.log")).unwrap();
    assert!(
        log.lines().any(|l| l == "get"),
        "pull asked the helper: {log}"
    );
    d.assert_content_intact("default");
    // A push (token auth, push scope) with the helper's credentials too.
    let copy = format!("{}/helper/copy:v1", reg.address);
    let pushed = d.ctl_env(&["push", "-q", &copy, &image], &env, "").ok();
    assert!(pushed.stdout.contains("pushed"), "{pushed:?}");

    let out = d.ctl_env(&["logout", &reg.address], &env, "").ok();
    assert_eq!(
        out.stdout,
        format!("Removing login credentials for {}\n", reg.address)
    );
    assert_eq!(stored(&store), "", "the helper erased the secret");
    let file = std::fs::read_to_string(&config).unwrap();
    assert!(!file.contains(&reg.address), "{file}");

    let denied = d.ctl_env(&["pull", &image], &env, "").fails();
    assert!(
        denied.stderr.contains(&reg.address) && denied.stderr.contains("hullctl login"),
        "{denied:?}"
    );
    let again = d.ctl_env(&["logout", &reg.address], &env, "").ok();
    assert_eq!(again.stdout, format!("Not logged in to {}\n", reg.address));
    let hub = d.ctl_env(&["logout"], &env, "").ok();
    assert_eq!(hub.stdout, "Not logged in to docker.io\n");
}

#[test]
fn identity_tokens_are_exchanged_for_access_tokens() {
    if !hull_integration::require_root() || !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::Token);
    let image = reg.push("small", "small:latest");
    let d = Hulld::start("");
    let config = d.dir.join("home/.docker/config.json");

    // As `docker login` leaves it for a registry that gave an identity
    // token: the token, no password.
    let entry = format!(
        r#"{{"auths":{{"{}":{{"identitytoken":"{IDENTITY_TOKEN}"}}}}}}"#,
        reg.address
    );
    std::fs::write(&config, entry).unwrap();
    d.ctl(&["pull", "-q", &image]).ok();
    d.assert_content_intact("default");
    let copy = format!("{}/identity/copy:v1", reg.address);
    let pushed = d.ctl(&["push", "-q", &copy, &image]).ok();
    assert!(pushed.stdout.contains("pushed"), "{pushed:?}");

    // From a credential helper, as docker's `<token>` user.
    let script = "#!/bin/sh\n[ \"$1\" = get ] || exit 2\ncat >/dev/null\n\
         printf '{\"Username\":\"<token>\",\"Secret\":\"%s\"}' \"$(cat \"$0.token\")\"\n";
    let (helper, path) = helper_on_path(&d, "oauth", script);
    let token_file = helper.with_extension("token");
    std::fs::write(&token_file, IDENTITY_TOKEN).unwrap();
    std::fs::write(&config, r#"{"credsStore":"oauth"}"#).unwrap();
    let env = [("PATH", path.as_os_str())];
    d.ctl(&["images", "rm", &image]).ok();
    d.ctl_env(&["pull", "-q", &image], &env, "").ok();

    // A token the server does not know (revoked, expired) is named.
    std::fs::write(&token_file, "revoked").unwrap();
    let denied = d.ctl_env(&["pull", &copy], &env, "").fails();
    assert!(
        denied.stderr.contains("rejected the identity token"),
        "{denied:?}"
    );
}
