//! `hullctl leases`: containerd's Leases service.

use crate::client::Client;
use crate::output::{age, print_json, table, Format};
use crate::{status, LeasesCmd, Result};
use hull_api::leases::*;
use serde_json::json;

pub async fn leases(c: &Client, cmd: LeasesCmd, format: Format) -> Result {
    let mut leases = c.leases();
    match cmd {
        LeasesCmd::Ls => {
            let list = leases
                .list(ListRequest::default())
                .await
                .map_err(status)?
                .into_inner()
                .leases;
            let mut rows = Vec::new();
            let mut json_rows = Vec::new();
            for l in &list {
                let resources = leases
                    .list_resources(ListResourcesRequest { id: l.id.clone() })
                    .await
                    .map_err(status)?
                    .into_inner()
                    .resources;
                let created = l.created_at.map(|t| t.seconds as u64).unwrap_or(0);
                json_rows.push(json!({
                    "id": l.id,
                    "createdAt": created,
                    "labels": l.labels,
                    "resources": resources.iter().map(|r| json!({"type": r.r#type, "id": r.id})).collect::<Vec<_>>(),
                }));
                rows.push(vec![
                    l.id.clone(),
                    age(created),
                    resources.len().to_string(),
                ]);
            }
            match format {
                Format::Json => print_json(&serde_json::Value::Array(json_rows)),
                Format::Table => print!("{}", table(&["ID", "CREATED", "RESOURCES"], &rows)),
            }
        }
        LeasesCmd::Rm { ids } => {
            for id in ids {
                leases
                    .delete(DeleteRequest {
                        id: id.clone(),
                        sync: true,
                    })
                    .await
                    .map_err(status)?;
                println!("{id}");
            }
        }
    }
    Ok(())
}
