//! The blueprint snapshot through the real binary: a large file is stored once however many
//! deployments keep it, `.windlassignore` leaves files out of the scripts' working directory,
//! and a snapshot over the limit is refused with what to do.

mod common;

use common::{Sandbox, stderr};

const MIB: usize = 1 << 20;

/// Lists the working directory (the deployment's snapshot) and checksums the large file.
const LIST: &str = r#"#!/bin/bash
set -e
id=$(ctx deployment id)
find . -type f | sort > "$OUT/listing-$id.txt"
sha256sum data/big.bin | cut -d' ' -f1 > "$OUT/sum-$id.txt"
"#;

/// Scripts write to `out/`, which the tests' ignore files leave out of later snapshots.
fn blueprint(sb: &Sandbox) {
    std::fs::create_dir_all(sb.dir.join("out")).unwrap();
    sb.file("scripts/list.sh", LIST);
    sb.file(
        "blueprint.yaml",
        &format!(
            r#"
tosca_definitions_version: cloudify_dsl_1_3
imports: [cloudify/types/types.yaml]
node_templates:
  app:
    type: cloudify.nodes.Root
    interfaces:
      cloudify.interfaces.lifecycle:
        create: {{ implementation: scripts/list.sh, inputs: {{ OUT: '{out}' }} }}
"#,
            out = sb.dir.join("out").display()
        ),
    );
}

/// Bytes that do not repeat within a chunk, so a mistake in chunk order shows.
fn content(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The state store's size on disk, once its write-ahead log is folded back into it (closing
/// the last connection does that).
fn store_size(sb: &Sandbox) -> u64 {
    let path = sb.dir.join("state.db");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        windlass::store::Store::open(path.to_str().unwrap())
            .await
            .unwrap()
            .close()
            .await
    });
    std::fs::metadata(&path).unwrap().len()
}

fn read(sb: &Sandbox, name: &str) -> String {
    std::fs::read_to_string(sb.dir.join("out").join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn a_large_file_is_stored_once_and_ignored_files_stay_out() {
    let sb = Sandbox::new("snapshot-dedupe");
    blueprint(&sb);
    let big = content(40 * MIB);
    std::fs::create_dir_all(sb.dir.join("data")).unwrap();
    std::fs::write(sb.dir.join("data/big.bin"), &big).unwrap();
    let (hash, _) = windlass::store::content_hash(big.as_slice()).unwrap();
    std::fs::create_dir_all(sb.dir.join("build")).unwrap();
    sb.file("build/output.o", "object code");
    sb.file("notes.tmp", "scratch");
    sb.file("keep.tmp", "wanted");
    sb.file(
        ".windlassignore",
        "# build output, scratch files, what the scripts write\nbuild/\n*.tmp\n!keep.tmp\n/out/\n",
    );

    let first = sb.run(&["deploy", "blueprint.yaml", "-d", "one"]);
    assert!(first.status.success(), "{}", stderr(&first));
    let said = stderr(&first);
    assert!(
        said.contains("note: the deployment keeps 4 files of 40.0 MiB")
            && said.contains("40.0 MiB of it new")
            && said.contains("data/big.bin (40.0 MiB)")
            && said.contains(&format!("{}/.windlassignore", sb.dir.display())),
        "{said}"
    );
    let after_first = store_size(&sb);
    assert!(after_first > (40 * MIB) as u64, "{after_first}");

    let second = sb.run(&["deploy", "blueprint.yaml", "-d", "two"]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("nothing new"),
        "{}",
        stderr(&second)
    );
    let grown = store_size(&sb) - after_first;
    assert!(
        grown < (2 * MIB) as u64,
        "the second deployment of the same files grew the store by {grown} bytes"
    );

    let expected = "./blueprint.yaml\n./data/big.bin\n./keep.tmp\n./scripts/list.sh\n";
    for id in ["one", "two"] {
        assert_eq!(read(&sb, &format!("listing-{id}.txt")), expected, "{id}");
        assert_eq!(read(&sb, &format!("sum-{id}.txt")).trim(), hash, "{id}");
    }

    // Deleting one deployment leaves the other's files whole: its scripts still run from them.
    sb.ok(&["undeploy", "one"]);
    std::fs::remove_file(sb.dir.join("out/sum-two.txt")).unwrap();
    sb.ok(&[
        "run",
        "two",
        "execute_operation",
        "-p",
        r#"{"operation": "cloudify.interfaces.lifecycle.create"}"#,
    ]);
    assert_eq!(read(&sb, "sum-two.txt").trim(), hash);
}

#[test]
fn a_snapshot_over_the_limit_says_how_to_exclude() {
    let sb = Sandbox::new("snapshot-limit");
    blueprint(&sb);
    std::fs::create_dir_all(sb.dir.join("data")).unwrap();
    sb.file("data/big.bin", "small");
    // Sparse, so the test writes nothing: the limit is checked on sizes before any read.
    let huge = std::fs::File::create(sb.dir.join("disk.img")).unwrap();
    huge.set_len(2 << 30).unwrap();

    let out = sb.run(&["deploy", "blueprint.yaml", "-d", "d"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let said = stderr(&out);
    assert!(
        said.contains("disk.img (2.0 GiB)") && said.contains(".windlassignore"),
        "{said}"
    );
    assert_eq!(
        sb.json(&["list", "--json"]),
        serde_json::json!([]),
        "no deployment was created"
    );

    sb.file(".windlassignore", "/disk.img\nout/\n");
    let out = sb.run(&["deploy", "blueprint.yaml", "-d", "d"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        !stderr(&out).contains("note:"),
        "a small snapshot is not reported"
    );
}
