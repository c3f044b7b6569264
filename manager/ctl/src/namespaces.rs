//! `hullctl namespaces`: containerd's Namespaces service.

use crate::client::Client;
use crate::output::{print_json, safe, table, Format};
use crate::{status, NamespacesCmd, Result};
use hull_api::namespaces::*;
use serde_json::json;

pub async fn namespaces(c: &Client, cmd: NamespacesCmd, format: Format) -> Result {
    let mut ns = c.namespaces();
    match cmd {
        NamespacesCmd::Ls { quiet } => {
            let list = ns
                .list(ListNamespacesRequest::default())
                .await
                .map_err(status)?
                .into_inner()
                .namespaces;
            match (format, quiet) {
                (Format::Json, _) => print_json(
                    &list
                        .iter()
                        .map(|n| json!({"name": n.name, "labels": n.labels}))
                        .collect(),
                ),
                (Format::Table, true) => list.iter().for_each(|n| println!("{}", safe(&n.name))),
                (Format::Table, false) => {
                    let rows: Vec<Vec<String>> = list
                        .iter()
                        .map(|n| {
                            let mut labels: Vec<String> =
                                n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                            labels.sort();
                            vec![n.name.clone(), labels.join(",")]
                        })
                        .collect();
                    print!("{}", table(&["NAME", "LABELS"], &rows));
                }
            }
        }
        NamespacesCmd::Create { name } => {
            ns.create(CreateNamespaceRequest {
                namespace: Some(Namespace {
                    name: name.clone(),
                    labels: Default::default(),
                }),
            })
            .await
            .map_err(status)?;
            println!("{name}");
        }
        NamespacesCmd::Rm { names } => {
            for name in names {
                ns.delete(DeleteNamespaceRequest { name: name.clone() })
                    .await
                    .map_err(status)?;
                println!("{name}");
            }
        }
    }
    Ok(())
}
