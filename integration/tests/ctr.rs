//! containerd's own client against hulld: Debian's ctr 1.6 runs the same
//! commands against hulld and against containerd 1.6, and both must answer
//! alike (digests, keys, kinds, mount types; not sizes, ages or paths).
//! What hulld does not serve answers Unimplemented naming the method.

use hull_integration::manager::{have_registry, Auth, Hulld, Registry};
use hull_integration::workspace_dir;
use std::process::Command;

#[test]
fn ctr_gets_the_same_answers_from_hulld_as_from_containerd() {
    if !hull_integration::require_root() || !have_registry() {
        return;
    }
    let reg = Registry::start(Auth::None);
    reg.push("small", "app:latest");
    reg.push("multiarch", "multi:latest");
    let d = Hulld::start("");
    let scratch = hull_integration::host::ScratchDir::new("ctr-both");
    let out = Command::new("unshare")
        .args(["--mount", "--propagation", "private"])
        .arg(workspace_dir().join("integration/scripts/ctr-both.sh"))
        .arg(&d.socket)
        .arg(&reg.address)
        .arg(&*scratch)
        .output()
        .expect("running ctr-both.sh");
    assert!(
        out.status.success(),
        "ctr-both.sh: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(scratch.join("containerd.log")).unwrap_or_default()
    );
    let dir = |who: &str| scratch.join("out").join(who);
    let mut steps: Vec<String> = std::fs::read_dir(dir("hull"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".rc"))
        .map(|n| n.trim_end_matches(".rc").to_string())
        .collect();
    steps.sort();
    assert_eq!(steps.len(), 19, "{steps:?}");
    for step in &steps {
        let read = |who: &str, ext: &str| {
            std::fs::read_to_string(dir(who).join(format!("{step}{ext}"))).unwrap_or_default()
        };
        let (hull_rc, containerd_rc) = (read("hull", ".rc"), read("containerd", ".rc"));
        assert_eq!(
            hull_rc.trim(),
            "0",
            "ctr {step} failed against hulld: {}",
            read("hull", ".err")
        );
        assert_eq!(
            containerd_rc.trim(),
            "0",
            "ctr {step} failed against containerd: {}",
            read("containerd", ".err")
        );
        assert_eq!(
            read("hull", ""),
            read("containerd", ""),
            "ctr {step}: hulld and containerd answer differently"
        );
        let must_say_something = [
            "03-ns-ls",
            "05-images-ls",
            "06-content-ls",
            "08-content-ls-after",
            "09-snapshots-ls",
            "10-snapshots-tree",
            "13-mounts",
            "15-snapshots-ls-committed",
            "18-content-get",
        ];
        if must_say_something.contains(&step.as_str()) {
            assert!(
                !read("hull", "").trim().is_empty(),
                "ctr {step} printed nothing"
            );
        }
    }
    // Something hulld does not serve says so, naming the method: making a
    // layer from a snapshot (Diff.Diff).
    let image = format!("{}/app:latest", reg.address);
    d.ctr(&["images", "pull", "--plain-http", &image]).ok();
    let top = d.ctr(&["snapshots", "ls"]).ok().stdout;
    let top = top
        .lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().next())
        .expect("a snapshot")
        .to_string();
    d.ctr(&["snapshots", "prepare", "diff-me", &top]).ok();
    let diff = d.ctr(&["snapshots", "diff", "diff-me"]).fails();
    assert!(
        diff.stderr.contains("not implemented")
            && diff
                .stderr
                .contains("containerd.services.diff.v1.Diff/Diff"),
        "{diff:?}"
    );
    hull_integration::host::remove_scratch_dir(&scratch).unwrap();
}
