//! The runtime's modules import downward only: no module imports (with `use`, or by a
//! `crate::…::` path in code) a module that imports it back, directly or through others.
//! The crate root only declares modules and re-exports them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `module -> the modules it imports`, for the top-level modules of `src`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut todo = vec![src.clone()];
    while let Some(dir) = todo.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&src).unwrap();
            let first = relative.components().next().unwrap();
            let module = first.as_os_str().to_str().unwrap().trim_end_matches(".rs");
            if module == "lib" {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let deps = graph.entry(module.to_owned()).or_default();
            for line in text.lines() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                let mut rest = code;
                while let Some(at) = rest.find("crate::") {
                    rest = &rest[at + "crate::".len()..];
                    let name: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != module {
                        deps.insert(name);
                    }
                }
            }
        }
    }
    graph
}

#[test]
fn modules_import_downward_only() {
    let graph = imports();
    assert!(graph.len() > 15, "{} modules found", graph.len());
    // A module is in a cycle if it can reach itself.
    let mut cycles = Vec::new();
    for start in graph.keys() {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&String> = graph[start].iter().collect();
        while let Some(m) = todo.pop() {
            if m == start {
                cycles.push(start.clone());
                break;
            }
            if seen.insert(m.clone()) {
                todo.extend(graph.get(m).into_iter().flatten());
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that import themselves through others: {cycles:?}\n{graph:#?}"
    );
}

#[test]
fn the_execution_module_is_a_leaf() {
    let graph = imports();
    let execution: Vec<&String> = graph["execution"].iter().collect();
    assert_eq!(
        execution,
        ["deps", "json"],
        "execution imports only `Fault` and `Json`"
    );
    assert!(graph["json"].is_empty() && graph["deps"].is_empty());
}
