//! Robustness: mutated Dockerfiles (BuildKit's corpus with random byte-level edits) must
//! never panic anywhere in the front end: parse, typing, planning, expansion. Errors are
//! fine. A deterministic generator keeps failures reproducible (the failing input is
//! printed).

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use berth_build::dockerfile::{expand_instruction, parse_instruction, parser};
use berth_build::dockerignore::PatternMatcher;
use berth_build::plan::plan_stages;
use berth_build::shell::Lex;

/// xorshift64*: tiny, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const ALPHABET: &[char] = &[
    '\\', '`', '$', '{', '}', '"', '\'', '\n', ' ', '\t', '[', ']', ',', '=', '<', '-', ':', '#',
    '%', '/', '?', '+', 'a', '0', 'é', '한',
];

fn mutate(rng: &mut Rng, src: &str) -> String {
    let mut chars: Vec<char> = src.chars().collect();
    for _ in 0..1 + rng.below(6) {
        let pos = if chars.is_empty() {
            0
        } else {
            rng.below(chars.len())
        };
        match rng.below(3) {
            0 if !chars.is_empty() => {
                chars.remove(pos);
            }
            1 if !chars.is_empty() => chars[pos] = ALPHABET[rng.below(ALPHABET.len())],
            _ => chars.insert(pos, ALPHABET[rng.below(ALPHABET.len())]),
        }
    }
    chars.into_iter().collect()
}

fn exercise(src: &str) {
    let env: Vec<(String, String)> = vec![("A".into(), "x y".into()), ("E".into(), String::new())];
    let Ok(df) = parser::parse(src) else { return };
    let _ = df.dump();
    let mut typed = Vec::new();
    for node in &df.children {
        if let Ok(inst) = parse_instruction(node, df.escape_token) {
            let _ = expand_instruction(&inst, &env);
            typed.push(inst);
        }
    }
    if let Ok(plan) = plan_stages(typed, &HashMap::new()) {
        let _ = plan.parallel_levels(None);
        for i in 0..plan.stages.len() {
            let _ = plan.expand_stage(i, &env);
        }
    }
}

#[test]
fn mutated_corpus_never_panics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/dockerfile-parser/testfiles");
    let mut seeds = Vec::new();
    for entry in fs::read_dir(&root).expect("corpus") {
        let p = entry.expect("entry").path().join("Dockerfile");
        seeds.push(fs::read_to_string(&p).expect("seed"));
    }
    seeds.sort();
    seeds.push(
        "FROM a\nRUN <<-'EOF' 3<<X cat\n\tx\nEOF\ny\nX\nCOPY <<A <<B /d\n1\nA\n2\nB\n".into(),
    );
    seeds.push("ARG B=${X:-y}\nFROM $B AS s\nRUN --mount=type=cache,target=$T,uid=${U:-1} x\nCOPY --from=s a b\n".into());
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..3000 {
        let seed = &seeds[round % seeds.len()];
        let input = mutate(&mut rng, seed);
        let outcome = std::panic::catch_unwind(|| exercise(&input));
        assert!(outcome.is_ok(), "panic on round {round}, input {input:?}");
    }
}

#[test]
fn random_words_never_panic_the_lexer() {
    let env: Vec<(String, String)> = vec![("A".into(), "a b".into())];
    let mut rng = Rng(0x1234_5678_9abc_def1);
    for round in 0..20000 {
        let len = rng.below(12);
        let word: String = (0..len)
            .map(|_| ALPHABET[rng.below(ALPHABET.len())])
            .collect();
        let outcome = std::panic::catch_unwind(|| {
            for escape in ['\\', '`'] {
                let lex = Lex::new(escape);
                let _ = lex.process_word(&word, &env);
                let _ = lex.process_words(&word, &env);
            }
        });
        assert!(outcome.is_ok(), "panic on round {round}, word {word:?}");
    }
}

#[test]
fn random_ignore_patterns_never_panic() {
    let mut rng = Rng(0x0bad_cafe_dead_beef);
    let alphabet = [
        '*', '?', '[', ']', '^', '!', '/', '\\', '.', 'a', 'b', '-', '(', '$',
    ];
    for round in 0..20000 {
        let pat: String = (0..rng.below(8))
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        let path: String = (0..rng.below(8))
            .map(|_| alphabet[rng.below(alphabet.len())])
            .collect();
        let outcome = std::panic::catch_unwind(|| {
            if let Ok(pm) = PatternMatcher::new(&[pat.as_str()]) {
                let _ = pm.matches(&path);
                let _ = pm.matches_or_parent_matches(&path);
            }
        });
        assert!(
            outcome.is_ok(),
            "panic on round {round}, pattern {pat:?} path {path:?}"
        );
    }
}
