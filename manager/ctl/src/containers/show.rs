//! `hullctl ps`, `logs`, `inspect`, `top`, `stats`.

use super::args::{PsArgs, StatsArgs};
use super::lifecycle::{task_status, EXIT_CODE_LABEL, FINISHED_LABEL};
use super::{name_of, Ctx, Exit};
use crate::output::{age, print_json, safe, size, table, Format};
use crate::status;
use hull_api::containers::Container;
use std::time::Duration;

fn command_of(c: &Container) -> String {
    let spec: serde_json::Value = c
        .spec
        .as_ref()
        .and_then(|s| serde_json::from_slice(&s.value).ok())
        .unwrap_or_default();
    let args: Vec<String> = spec["process"]["args"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let joined = args.join(" ");
    if joined.chars().count() > 20 {
        format!("\"{}…\"", joined.chars().take(19).collect::<String>())
    } else {
        format!("\"{joined}\"")
    }
}

/// docker's STATUS column: "Up 3 minutes", "Exited (0) 2 seconds ago".
async fn status_text(ctx: &Ctx<'_>, c: &Container) -> (String, bool) {
    match task_status(ctx.c, &c.id).await {
        Some((s, _, _)) if s == "running" => ("Up".into(), true),
        Some((s, _, _)) if s == "paused" => ("Up (Paused)".into(), true),
        Some((_, _, code)) => (format!("Exited ({code})"), false),
        None => match c.labels.get(EXIT_CODE_LABEL) {
            Some(code) => {
                let when = c
                    .labels
                    .get(FINISHED_LABEL)
                    .and_then(|t| t.parse::<u64>().ok())
                    .map(age)
                    .unwrap_or_default();
                (format!("Exited ({code}) {when}"), false)
            }
            None => ("Created".into(), false),
        },
    }
}

pub async fn ps(ctx: &Ctx<'_>, a: PsArgs) -> Exit {
    let all = super::list(ctx.c).await?;
    let mut rows = Vec::new();
    let mut json = Vec::new();
    for c in &all {
        let (state, up) = status_text(ctx, c).await;
        if !up && !a.all {
            continue;
        }
        if a.quiet {
            println!("{}", &c.id[..c.id.len().min(12)]);
            continue;
        }
        let created = c.created_at.map(|t| t.seconds as u64).unwrap_or(0);
        json.push(serde_json::json!({
            "ID": c.id, "Image": c.image, "Command": command_of(c),
            "CreatedAt": created, "Status": state, "Names": name_of(c),
            "Ports": super::network::ports_column(c),
        }));
        rows.push(vec![
            c.id[..c.id.len().min(12)].to_string(),
            c.image.clone(),
            command_of(c),
            age(created),
            state,
            super::network::ports_column(c),
            name_of(c),
        ]);
    }
    if a.quiet {
        return Ok(0);
    }
    match ctx.format {
        Format::Json => print_json(&serde_json::Value::Array(json)),
        Format::Table => print!(
            "{}",
            table(
                &[
                    "CONTAINER ID",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "PORTS",
                    "NAMES"
                ],
                &rows
            )
        ),
    }
    Ok(0)
}

pub async fn inspect(ctx: &Ctx<'_>, names: &[String]) -> Exit {
    let mut out = Vec::new();
    for name in names {
        let c = super::find(ctx.c, name).await?;
        let spec: serde_json::Value = c
            .spec
            .as_ref()
            .and_then(|s| serde_json::from_slice(&s.value).ok())
            .unwrap_or_default();
        let task = task_status(ctx.c, &c.id).await;
        out.push(serde_json::json!({
            "Id": c.id,
            "Name": name_of(&c),
            "Image": c.image,
            "Created": c.created_at.map(|t| t.seconds),
            "Labels": c.labels,
            "Runtime": c.runtime.as_ref().map(|r| r.name.clone()),
            "Snapshotter": c.snapshotter,
            "SnapshotKey": c.snapshot_key,
            "State": match &task {
                Some((s, pid, code)) => serde_json::json!({"Status": s, "Pid": pid, "ExitCode": code}),
                None => serde_json::json!({"Status": "stopped", "ExitCode": c.labels.get(EXIT_CODE_LABEL)}),
            },
            "NetworkSettings": super::network::settings(&c),
            "Spec": spec,
        }));
    }
    print_json(&serde_json::Value::Array(out));
    Ok(0)
}

pub async fn top(ctx: &Ctx<'_>, name: &str) -> Exit {
    let c = super::find(ctx.c, name).await?;
    let pids = ctx
        .c
        .tasks()
        .list_pids(hull_api::tasks::ListPidsRequest {
            container_id: c.id.clone(),
        })
        .await
        .map_err(status)?
        .into_inner()
        .processes;
    let mut rows = Vec::new();
    for p in pids {
        let cmdline = std::fs::read(format!("/proc/{}/cmdline", p.pid)).unwrap_or_default();
        let cmd: Vec<String> = cmdline
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
        let uid = std::fs::read_to_string(format!("/proc/{}/status", p.pid))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("Uid:"))
                    .and_then(|v| v.split_whitespace().next().map(str::to_string))
            })
            .unwrap_or_default();
        rows.push(vec![
            uid,
            p.pid.to_string(),
            safe(&cmd.join(" ")).into_owned(),
        ]);
    }
    print!("{}", table(&["UID", "PID", "CMD"], &rows));
    Ok(0)
}

pub async fn stats(ctx: &Ctx<'_>, a: StatsArgs) -> Exit {
    loop {
        let metrics = ctx
            .c
            .tasks()
            .metrics(hull_api::tasks::MetricsRequest::default())
            .await
            .map_err(status)?
            .into_inner()
            .metrics;
        let mut rows = Vec::new();
        for c in super::list(ctx.c).await? {
            let wanted = a.containers.is_empty()
                || a.containers
                    .iter()
                    .any(|n| *n == name_of(&c) || c.id.starts_with(n.as_str()));
            let Some(m) = metrics.iter().find(|m| m.id == c.id) else {
                continue;
            };
            if !wanted {
                continue;
            }
            let s = hull_api::metrics::decode(m.data.as_ref());
            rows.push(vec![
                c.id[..12.min(c.id.len())].to_string(),
                name_of(&c),
                format!("{:.2}s", s.cpu_nanos as f64 / 1e9),
                format!(
                    "{} / {}",
                    size(s.memory),
                    s.memory_limit.map(size).unwrap_or_else(|| "-".into())
                ),
                s.pids.to_string(),
                format!("{} / {}", size(s.read_bytes), size(s.write_bytes)),
            ]);
        }
        print!(
            "{}",
            table(
                &[
                    "CONTAINER ID",
                    "NAME",
                    "CPU TIME",
                    "MEM USAGE / LIMIT",
                    "PIDS",
                    "BLOCK I/O"
                ],
                &rows
            )
        );
        if a.no_stream {
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!();
    }
}

/// `uid[:gid]` for `exec -u`: numbers pass, names are looked up in the
/// container's /etc/passwd and /etc/group.
pub async fn numeric_user(ctx: &Ctx<'_>, c: &Container, user: &str) -> Result<(u32, u32), String> {
    let (u, g) = user
        .split_once(':')
        .map_or((user, None), |(u, g)| (u, Some(g)));
    let files = super::run::snapshot_files(ctx.c, c).await?;
    let passwd = hull_spec::RootfsFiles::read(&files, "/etc/passwd").unwrap_or_default();
    let group = hull_spec::RootfsFiles::read(&files, "/etc/group").unwrap_or_default();
    let lookup = |text: &[u8], name: &str, field: usize| -> Option<(u32, u32)> {
        String::from_utf8_lossy(text).lines().find_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            (f.first() == Some(&name) && f.len() > field).then(|| {
                (
                    f[2].parse().unwrap_or(0),
                    f.get(3).and_then(|g| g.parse().ok()).unwrap_or(0),
                )
            })
        })
    };
    let (uid, default_gid) = match u.parse::<u32>() {
        Ok(n) => (n, lookup(&passwd, u, 2).map(|x| x.1).unwrap_or(0)),
        Err(_) => lookup(&passwd, u, 3)
            .ok_or_else(|| format!("user {u:?} not found in the container's /etc/passwd"))?,
    };
    let gid = match g {
        None => default_gid,
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup(&group, g, 2)
                .map(|x| x.0)
                .ok_or_else(|| format!("group {g:?} not found in the container's /etc/group"))?,
        },
    };
    Ok((uid, gid))
}
