//! `hullctl snapshots`: containerd's Snapshots service.

use crate::client::Client;
use crate::output::{age, print_json, safe, size, table, Format};
use crate::{status, Result, SnapshotsCmd};
use hull_api::snapshots::*;
use serde_json::json;
use std::collections::BTreeMap;

fn kind_name(k: i32) -> &'static str {
    match Kind::try_from(k) {
        Ok(Kind::View) => "View",
        Ok(Kind::Active) => "Active",
        Ok(Kind::Committed) => "Committed",
        _ => "Unknown",
    }
}

fn info_json(i: &Info) -> serde_json::Value {
    json!({
        "name": i.name,
        "parent": i.parent,
        "kind": kind_name(i.kind),
        "labels": i.labels,
        "createdAt": i.created_at.map(|t| t.seconds),
        "updatedAt": i.updated_at.map(|t| t.seconds),
    })
}

fn mounts_json(mounts: &[hull_api::types::Mount]) -> serde_json::Value {
    mounts
        .iter()
        .map(|m| json!({"type": m.r#type, "source": m.source, "target": m.target, "options": m.options}))
        .collect()
}

pub async fn list(c: &Client, snapshotter: &str) -> Result<Vec<Info>> {
    let mut stream = c
        .snapshots()
        .list(ListSnapshotsRequest {
            snapshotter: snapshotter.to_string(),
            filters: Vec::new(),
        })
        .await
        .map_err(status)?
        .into_inner();
    let mut all = Vec::new();
    while let Some(batch) = stream.message().await.map_err(status)? {
        all.extend(batch.info);
    }
    all.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(all)
}

/// Disk use of `key` and all its parents (what an unpacked image takes).
pub async fn chain_usage(c: &Client, snapshotter: &str, key: &str) -> Result<u64> {
    let mut total = 0;
    let mut next = Some(key.to_string());
    while let Some(key) = next.take().filter(|k| !k.is_empty()) {
        let mut s = c.snapshots();
        let usage = s
            .usage(UsageRequest {
                snapshotter: snapshotter.to_string(),
                key: key.clone(),
            })
            .await
            .map_err(status)?
            .into_inner();
        total += usage.size.max(0) as u64;
        next = s
            .stat(StatSnapshotRequest {
                snapshotter: snapshotter.to_string(),
                key,
            })
            .await
            .map_err(status)?
            .into_inner()
            .info
            .map(|i| i.parent);
    }
    Ok(total)
}

fn print_tree(children: &BTreeMap<String, Vec<String>>, key: &str, depth: usize) {
    let indent = "  ".repeat(depth);
    let branch = if depth == 0 { "" } else { "\\_ " };
    println!("{indent}{branch}{}", safe(key));
    for child in children.get(key).into_iter().flatten() {
        print_tree(children, child, depth + 1);
    }
}

pub async fn snapshots(c: &Client, sn: &str, cmd: SnapshotsCmd, format: Format) -> Result {
    let mut s = c.snapshots();
    let sn = sn.to_string();
    match cmd {
        SnapshotsCmd::Ls => {
            let all = list(c, &sn).await?;
            match format {
                Format::Json => print_json(&all.iter().map(info_json).collect()),
                Format::Table => {
                    let rows: Vec<Vec<String>> = all
                        .iter()
                        .map(|i| {
                            let created = i.created_at.map(|t| t.seconds as u64).unwrap_or(0);
                            vec![
                                i.name.clone(),
                                i.parent.clone(),
                                kind_name(i.kind).to_string(),
                                age(created),
                            ]
                        })
                        .collect();
                    print!("{}", table(&["KEY", "PARENT", "KIND", "CREATED"], &rows));
                }
            }
        }
        SnapshotsCmd::Info { key } => {
            let info = s
                .stat(StatSnapshotRequest {
                    snapshotter: sn,
                    key,
                })
                .await
                .map_err(status)?
                .into_inner()
                .info
                .unwrap_or_default();
            print_json(&info_json(&info));
        }
        SnapshotsCmd::Tree => {
            let all = list(c, &sn).await?;
            let mut children: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for i in &all {
                children.entry(i.parent.clone()).or_default().push(i.name.clone());
            }
            for root in children.get("").cloned().unwrap_or_default() {
                print_tree(&children, &root, 0);
            }
        }
        SnapshotsCmd::Usage { key } => {
            let keys = match key {
                Some(k) => vec![k],
                None => list(c, &sn).await?.into_iter().map(|i| i.name).collect(),
            };
            let mut rows = Vec::new();
            let mut out = Vec::new();
            for key in keys {
                let u = s
                    .usage(UsageRequest {
                        snapshotter: sn.clone(),
                        key: key.clone(),
                    })
                    .await
                    .map_err(status)?
                    .into_inner();
                out.push(json!({"key": key, "size": u.size, "inodes": u.inodes}));
                rows.push(vec![key, size(u.size.max(0) as u64), u.inodes.to_string()]);
            }
            match format {
                Format::Json => print_json(&serde_json::Value::Array(out)),
                Format::Table => print!("{}", table(&["KEY", "SIZE", "INODES"], &rows)),
            }
        }
        SnapshotsCmd::Rm { keys } => {
            for key in keys {
                s.remove(RemoveSnapshotRequest {
                    snapshotter: sn.clone(),
                    key: key.clone(),
                })
                .await
                .map_err(status)?;
                println!("{}", safe(&key));
            }
        }
        SnapshotsCmd::Mounts { key } => {
            let mounts = s
                .mounts(MountsRequest {
                    snapshotter: sn,
                    key,
                })
                .await
                .map_err(status)?
                .into_inner()
                .mounts;
            print_json(&mounts_json(&mounts));
        }
    }
    Ok(())
}
