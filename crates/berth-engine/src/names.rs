//! Container names: validation, generation and the name → id index.
//!
//! Names are reserved before a container record exists so two concurrent creates with the
//! same name cannot both win.

use crate::{Error, Result};
use rand::seq::IndexedRandom;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct NameIndex {
    map: Mutex<HashMap<String, String>>,
}

fn normalize(name: &str) -> String {
    format!("/{}", name.trim_start_matches('/'))
}

/// Docker's rule: `^/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$`.
pub fn validate(name: &str) -> Result<()> {
    let n = name.strip_prefix('/').unwrap_or(name);
    let mut chars = n.chars();
    let ok = match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {
            n.len() >= 2 && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )))
    }
}

impl NameIndex {
    pub fn get(&self, name: &str) -> Option<String> {
        self.map
            .lock()
            .expect("name index lock poisoned")
            .get(&normalize(name))
            .cloned()
    }

    /// Reserves `name` for `id`; the error names the current holder like Docker does.
    pub fn reserve(&self, name: &str, id: &str) -> Result<String> {
        let key = normalize(name);
        let mut m = self.map.lock().expect("name index lock poisoned");
        if let Some(holder) = m.get(&key) {
            if holder != id {
                return Err(Error::Conflict(format!(
                    "Conflict. The container name \"{key}\" is already in use by container \"{holder}\". You have to remove (or rename) that container to be able to reuse that name."
                )));
            }
        }
        m.insert(key.clone(), id.to_string());
        Ok(key)
    }

    pub fn release(&self, name: &str) {
        self.map
            .lock()
            .expect("name index lock poisoned")
            .remove(&normalize(name));
    }

    /// A free name of Docker's `adjective_surname` form.
    pub fn generate(&self, id: &str) -> String {
        for _ in 0..32 {
            let mut rng = rand::rng();
            let l = LEFT.choose(&mut rng).expect("non-empty list");
            let r = RIGHT.choose(&mut rng).expect("non-empty list");
            let n = format!("{l}_{r}");
            if self.reserve(&n, id).is_ok() {
                return format!("/{n}");
            }
        }
        let n = format!("/{}", &id[..12]);
        self.map
            .lock()
            .expect("name index lock poisoned")
            .insert(n.clone(), id.to_string());
        n
    }
}

const LEFT: &[&str] = &[
    "admiring",
    "adoring",
    "affectionate",
    "agitated",
    "amazing",
    "angry",
    "awesome",
    "beautiful",
    "blissful",
    "bold",
    "boring",
    "brave",
    "busy",
    "charming",
    "clever",
    "compassionate",
    "competent",
    "condescending",
    "confident",
    "cool",
    "cranky",
    "crazy",
    "dazzling",
    "determined",
    "distracted",
    "dreamy",
    "eager",
    "ecstatic",
    "elastic",
    "elated",
    "elegant",
    "eloquent",
    "epic",
    "exciting",
    "fervent",
    "festive",
    "flamboyant",
    "focused",
    "friendly",
    "frosty",
    "funny",
    "gallant",
    "gifted",
    "goofy",
    "gracious",
    "great",
    "happy",
    "hardcore",
    "heuristic",
    "hopeful",
    "hungry",
    "infallible",
    "inspiring",
    "intelligent",
    "interesting",
    "jolly",
    "jovial",
    "keen",
    "kind",
    "laughing",
    "loving",
    "lucid",
    "magical",
    "modest",
    "musing",
    "mystifying",
    "naughty",
    "nervous",
    "nice",
    "nifty",
    "nostalgic",
    "objective",
    "optimistic",
    "peaceful",
    "pedantic",
    "pensive",
    "practical",
    "priceless",
    "quirky",
    "quizzical",
    "recursing",
    "relaxed",
    "reverent",
    "romantic",
    "sad",
    "serene",
    "sharp",
    "silly",
    "sleepy",
    "stoic",
    "strange",
    "stupefied",
    "suspicious",
    "sweet",
    "tender",
    "thirsty",
    "trusting",
    "unruffled",
    "upbeat",
    "vibrant",
    "vigilant",
    "vigorous",
    "wizardly",
    "wonderful",
    "xenodochial",
    "youthful",
    "zealous",
    "zen",
];

const RIGHT: &[&str] = &[
    "agnesi",
    "albattani",
    "allen",
    "almeida",
    "archimedes",
    "ardinghelli",
    "aryabhata",
    "austin",
    "babbage",
    "banach",
    "bardeen",
    "bartik",
    "bassi",
    "bell",
    "bhabha",
    "bhaskara",
    "blackwell",
    "bohr",
    "booth",
    "borg",
    "bose",
    "boyd",
    "brahmagupta",
    "brattain",
    "brown",
    "carson",
    "chandrasekhar",
    "chatelet",
    "chaum",
    "cohen",
    "curie",
    "darwin",
    "davinci",
    "dijkstra",
    "dubinsky",
    "easley",
    "einstein",
    "elion",
    "engelbart",
    "euclid",
    "euler",
    "faraday",
    "fermat",
    "fermi",
    "feynman",
    "franklin",
    "galileo",
    "gates",
    "goldberg",
    "goldstine",
    "goodall",
    "hamilton",
    "hawking",
    "heisenberg",
    "hermann",
    "hodgkin",
    "hoover",
    "hopper",
    "hypatia",
    "jackson",
    "jang",
    "jennings",
    "jepsen",
    "johnson",
    "joliot",
    "kalam",
    "kare",
    "keller",
    "kepler",
    "khorana",
    "kilby",
    "knuth",
    "lalande",
    "lamarr",
    "leakey",
    "leavitt",
    "lehmann",
    "lovelace",
    "lumiere",
    "mahavira",
    "mayer",
    "mccarthy",
    "mclean",
    "meitner",
    "mendel",
    "merkle",
    "mirzakhani",
    "montalcini",
    "moore",
    "morse",
    "napier",
    "nash",
    "newton",
    "nobel",
    "noether",
    "pascal",
    "pasteur",
    "payne",
    "perlman",
    "pike",
    "poincare",
    "ptolemy",
    "raman",
    "ramanujan",
    "ride",
    "ritchie",
    "robinson",
    "rosalind",
    "sammet",
    "shannon",
    "shaw",
    "shirley",
    "sinoussi",
    "snyder",
    "spence",
    "stonebraker",
    "swanson",
    "tesla",
    "thompson",
    "torvalds",
    "turing",
    "varahamihira",
    "visvesvaraya",
    "wilbur",
    "wiles",
    "williams",
    "wilson",
    "wing",
    "wozniak",
    "wright",
    "yalow",
    "yonath",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert!(validate("web").is_ok());
        assert!(validate("/web-1.a_b").is_ok());
        assert!(validate("a").is_err());
        assert!(validate("-web").is_err());
        assert!(validate("we b").is_err());
        assert!(validate("").is_err());
    }

    #[test]
    fn reserve_conflict_names_holder() {
        let idx = NameIndex::default();
        idx.reserve("web", "aaa").expect("first reservation");
        let err = idx.reserve("/web", "bbb").expect_err("second must fail");
        assert!(err
            .to_string()
            .contains("\"/web\" is already in use by container \"aaa\""));
        idx.release("web");
        idx.reserve("web", "bbb").expect("free again");
    }

    #[test]
    fn generated_names_are_unique() {
        let idx = NameIndex::default();
        let a = idx.generate("0123456789abcdef");
        let b = idx.generate("fedcba9876543210");
        assert_ne!(a, b);
        assert!(a.starts_with('/'));
    }
}
