//! grrm-recsys: recommendation data for grrm — datasets and importers, preprocessing, the
//! leave-one-out split, statistics, the synthetic default dataset, ranking metrics and
//! baselines.

pub mod baselines;
pub mod curriculum;
pub mod dataset;
pub mod error;
pub mod import;
pub mod index;
pub mod io;
pub mod metrics;
pub mod preprocess;
pub mod prompts;
pub mod split;
pub mod stats;
pub mod synth;
pub mod tasks;

pub use baselines::{evaluate_baselines, BaselineReport};
pub use curriculum::{CurriculumConfig, CurriculumReport};
pub use dataset::{Dataset, ItemMeta, Review};
pub use error::{DataError, Result};
pub use import::amazon::{import_amazon, AmazonConfig};
pub use import::gream::{import_gream, GreamConfig};
pub use import::recbole::{import_recbole, RecboleConfig};
pub use import::{ImportReport, OnMalformed};
pub use index::{
    all_index_tokens, build_index, index_folder, IndexConfig, IndexReport, ItemEmbedder,
    TfidfEmbedder,
};
pub use metrics::{MetricsAccumulator, RankingMetrics};
pub use preprocess::{PreprocessConfig, PreprocessReport};
pub use prompts::{build_prompts, Prompt, PromptConfig, PromptMode, PromptSets};
pub use split::{Example, Split, UserSplit, HISTORY_CAP};
pub use stats::{stats, Stats};
pub use synth::{synth, synth_with_report, SynthConfig};
pub use tasks::byo::{read_byo, ByoFormat, ByoRole, ByoSource};
pub use tasks::sft::{
    build_sft, read_chat_jsonl, write_jsonl, ReasoningConfig, SftConfig, SftReport,
};
pub use tasks::teacher::TeacherConfig;
pub use tasks::{ChatSample, Message};
