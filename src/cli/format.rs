//! How the CLI prints what the API returned, as Consul's CLI prints it: aligned columns
//! (columnize: two spaces between columns), `key:value` lines for recursive KV reads, and
//! `info`'s sections. Pure: JSON in, text out.

use serde_json::Value;

/// Lines of cells aligned into columns separated by two spaces; the last column is not
/// padded.
pub fn columns(rows: &[Vec<String>]) -> String {
    let n = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..n)
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| c.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 < r.len() {
                line.push_str(&format!("{c:<w$}  ", w = widths[i]));
            } else {
                line.push_str(c);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Serf's member status numbers as Consul prints them.
fn member_status(v: &Value) -> &'static str {
    match v.as_u64() {
        Some(0) => "none",
        Some(1) => "alive",
        Some(2) => "leaving",
        Some(3) => "left",
        Some(4) => "failed",
        _ => "unknown",
    }
}

/// `outpost members`: `/v1/agent/members` as a table; `detailed` shows every tag.
pub fn members(members: &Value, detailed: bool) -> String {
    let mut list: Vec<&Value> = members
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    list.sort_by_key(|m| s(&m["Name"]));
    let mut rows = Vec::new();
    if detailed {
        rows.push(vec![
            "Node".into(),
            "Address".into(),
            "Status".into(),
            "Tags".into(),
        ]);
        for m in list {
            let tags = m["Tags"]
                .as_object()
                .map(|t| {
                    t.iter()
                        .map(|(k, v)| format!("{k}={}", s(v)))
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .unwrap_or_default();
            rows.push(vec![
                s(&m["Name"]),
                format!("{}:{}", s(&m["Addr"]), s(&m["Port"])),
                member_status(&m["Status"]).into(),
                tags,
            ]);
        }
    } else {
        rows.push(
            [
                "Node", "Address", "Status", "Type", "Build", "Protocol", "DC",
            ]
            .map(String::from)
            .to_vec(),
        );
        for m in list {
            let t = &m["Tags"];
            let kind = if s(&t["role"]) == "consul" {
                "server"
            } else {
                "client"
            };
            rows.push(vec![
                s(&m["Name"]),
                format!("{}:{}", s(&m["Addr"]), s(&m["Port"])),
                member_status(&m["Status"]).into(),
                kind.into(),
                s(&t["build"]),
                s(&m["ProtocolCur"]),
                s(&t["dc"]),
            ]);
        }
    }
    columns(&rows)
}

/// `outpost catalog services`: one name per line, sorted; with `tags`, a tags column.
pub fn services(services: &Value, tags: bool) -> String {
    let Some(map) = services.as_object() else {
        return String::new();
    };
    let mut names: Vec<&String> = map.keys().collect();
    names.sort();
    if !tags {
        return names.iter().map(|n| format!("{n}\n")).collect();
    }
    let rows: Vec<Vec<String>> = names
        .iter()
        .map(|n| {
            let t: Vec<String> = map[*n]
                .as_array()
                .map(|a| a.iter().map(s).collect())
                .unwrap_or_default();
            vec![n.to_string(), t.join(",")]
        })
        .collect();
    columns(&rows)
}

/// `outpost catalog nodes`: Node, ID (first 8 characters), Address, DC.
pub fn nodes(nodes: &Value, detailed: bool) -> String {
    let mut rows = vec![if detailed {
        ["Node", "ID", "Address", "DC", "TaggedAddresses", "Meta"]
            .map(String::from)
            .to_vec()
    } else {
        ["Node", "ID", "Address", "DC"].map(String::from).to_vec()
    }];
    let mut list: Vec<&Value> = nodes
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    list.sort_by_key(|n| s(&n["Node"]));
    for n in list {
        let id = s(&n["ID"]);
        let kv = |v: &Value| {
            v.as_object()
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| format!("{k}={}", s(v)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default()
        };
        let mut row = vec![
            s(&n["Node"]),
            if detailed {
                id
            } else {
                id.chars().take(8).collect()
            },
            s(&n["Address"]),
            s(&n["Datacenter"]),
        ];
        if detailed {
            row.push(kv(&n["TaggedAddresses"]));
            row.push(kv(&n["Meta"]));
        }
        rows.push(row);
    }
    columns(&rows)
}

/// `outpost info`: the `Stats` of `/v1/agent/self`, section by section, keys sorted.
pub fn info(self_: &Value) -> String {
    let mut out = String::new();
    if let Some(stats) = self_["Stats"].as_object() {
        let mut sections: Vec<(&String, &Value)> = stats.iter().collect();
        sections.sort_by_key(|(k, _)| k.as_str());
        for (name, kv) in sections {
            out.push_str(&format!("{name}:\n"));
            if let Some(kv) = kv.as_object() {
                let mut keys: Vec<&String> = kv.keys().collect();
                keys.sort();
                for k in keys {
                    out.push_str(&format!("\t{k} = {}\n", s(&kv[k])));
                }
            }
        }
    }
    out
}

/// `outpost kv get -recurse`: `key:value` per line (values base64-decoded).
pub fn kv_recurse(entries: &Value) -> String {
    entries
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| {
                    format!(
                        "{}:{}\n",
                        s(&e["Key"]),
                        String::from_utf8_lossy(&kv_value(e))
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A KV entry's value, decoded (empty when null or not base64).
pub fn kv_value(entry: &Value) -> Vec<u8> {
    use base64::Engine;
    entry["Value"]
        .as_str()
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .unwrap_or_default()
}

/// `outpost kv get -detailed`: every field of the entry, aligned.
pub fn kv_detailed(entry: &Value) -> String {
    let rows: Vec<Vec<String>> = [
        ("CreateIndex", s(&entry["CreateIndex"])),
        ("Flags", s(&entry["Flags"])),
        ("Key", s(&entry["Key"])),
        ("LockIndex", s(&entry["LockIndex"])),
        ("ModifyIndex", s(&entry["ModifyIndex"])),
        ("Session", "-".to_string()),
        (
            "Value",
            String::from_utf8_lossy(&kv_value(entry)).into_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| vec![k.to_string(), v])
    .collect();
    columns(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_align_with_two_spaces_and_leave_the_last_unpadded() {
        let t = columns(&[
            vec!["Node".into(), "Address".into(), "DC".into()],
            vec!["box-long".into(), "10.0.0.1:8301".into(), "dc1".into()],
        ]);
        assert_eq!(
            t,
            "Node      Address        DC\nbox-long  10.0.0.1:8301  dc1\n"
        );
    }

    #[test]
    fn members_print_as_consul_members_does() {
        let m = json!([{"Name": "s1", "Addr": "127.0.1.2", "Port": 8301, "Status": 1,
                        "ProtocolCur": 2, "Tags": {"role": "consul", "dc": "dc1", "build": "0.1.0"}},
                       {"Name": "c1", "Addr": "127.0.1.3", "Port": 8301, "Status": 4,
                        "ProtocolCur": 2, "Tags": {"role": "node", "dc": "dc1", "build": "0.1.0"}}]);
        assert_eq!(
            members(&m, false),
            "Node  Address         Status  Type    Build  Protocol  DC\n\
             c1    127.0.1.3:8301  failed  client  0.1.0  2         dc1\n\
             s1    127.0.1.2:8301  alive   server  0.1.0  2         dc1\n"
        );
        let d = members(&m, true);
        assert!(d.starts_with("Node  Address         Status  Tags\n"), "{d}");
        assert!(d.contains("build=0.1.0,dc=dc1,role=consul"), "{d}");
    }

    #[test]
    fn services_nodes_info_and_kv_print_as_consul_does() {
        let sv = json!({"web": ["rails", "v1"], "consul": []});
        assert_eq!(services(&sv, false), "consul\nweb\n");
        assert_eq!(services(&sv, true), "consul\nweb     rails,v1\n");
        let n = json!([{"Node": "box1", "ID": "08cf3707-b570-dbec-3506-4dcb03d53501",
                        "Address": "127.0.0.1", "Datacenter": "dc1"}]);
        assert_eq!(
            nodes(&n, false),
            "Node  ID        Address    DC\nbox1  08cf3707  127.0.0.1  dc1\n"
        );
        let i = info(&json!({"Stats": {"consul": {"server": "true"}, "agent": {"checks": "1"}}}));
        assert_eq!(i, "agent:\n\tchecks = 1\nconsul:\n\tserver = true\n");
        let kv = json!([{"Key": "a", "Value": "aGk="}, {"Key": "b", "Value": null}]);
        assert_eq!(kv_recurse(&kv), "a:hi\nb:\n");
        assert!(kv_detailed(&kv[0]).contains("Value        hi"));
    }
}
