//! What sqlkeep encrypts is plain age: the `age` CLI (Debian's package,
//! installed by tests/run) decrypts it with a key from `age-keygen`, and
//! sqlkeep decrypts what the CLI encrypts, with the same identity file and
//! the recipients file `age-keygen -y` prints.

use crate::support::Scratch;
use sqlkeep_common::crypt::{Identities, Recipients};
use std::io::{Read, Write};
use std::process::Command;

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?} (tests/run installs age): {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn the_age_cli_and_sqlkeep_read_each_other() {
    let s = Scratch::new();
    let key = s.join("key.txt");
    run(Command::new("age-keygen").arg("-o").arg(&key));
    let public = run(Command::new("age-keygen").arg("-y").arg(&key));
    let recipients_file = s.join("recipients.txt");
    std::fs::write(&recipients_file, &public).unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 256) as u8).collect();

    // sqlkeep encrypts to the recipients file; age -d decrypts.
    let mut recipients = Recipients::new();
    recipients.add_file(&recipients_file).unwrap();
    let mut sealed = recipients.encrypt(Vec::new()).unwrap();
    sealed.write_all(&data).unwrap();
    let sealed = sealed.finish().unwrap();
    let ours = s.join("ours.age");
    std::fs::write(&ours, &sealed).unwrap();
    let plain = run(Command::new("age").arg("-d").arg("-i").arg(&key).arg(&ours));
    assert_eq!(plain, data, "age -d restores what sqlkeep encrypted");

    // age encrypts; sqlkeep decrypts with the identity file.
    let theirs = s.join("theirs.age");
    let input = s.join("plain.bin");
    std::fs::write(&input, &data).unwrap();
    run(Command::new("age")
        .arg("-R")
        .arg(&recipients_file)
        .arg("-o")
        .arg(&theirs)
        .arg(&input));
    let mut identities = Identities::new();
    let warning = identities.add_file(&key).unwrap();
    assert_eq!(warning, None, "age-keygen writes its key 0600");
    let mut back = Vec::new();
    identities
        .decrypt(
            std::fs::File::open(&theirs).unwrap(),
            &recipients.public(),
            "theirs.age",
        )
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, data);
}
