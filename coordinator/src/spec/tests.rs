use proptest::prelude::*;

use super::*;

const DEPTH_WIDTH: &str = r#"
name = "depth-width"
dataset = "cifar10"
seeds = [1, 2]

[recipe]
epochs = 10
lr_milestones = [5]

[grid]
depth = [16, 28]
width = [4, 10]
dropout = [0.0, 0.3]
"#;

fn err(text: &str) -> String {
    match Spec::parse(text).and_then(|s| s.expand(false)) {
        Ok(expansion) => panic!("accepted, {} jobs:\n{text}", expansion.jobs.len()),
        Err(e) => e.to_string(),
    }
}

fn with_grid(grid: &str) -> String {
    format!(
        "name = \"s\"\ndataset = \"cifar10\"\nseeds = [1]\n[recipe]\nepochs = 2\nlr_milestones = []\n[grid]\n{grid}\n"
    )
}

#[test]
fn expands_the_grid_times_seeds() {
    let spec = Spec::parse(DEPTH_WIDTH).unwrap();
    let expansion = spec.expand(false).unwrap();
    assert_eq!(expansion.cells.len(), 8);
    assert_eq!(expansion.jobs.len(), 16);
    let first = &expansion.jobs[0];
    assert_eq!(first.cell.blocks_per_group, 2);
    assert_eq!(first.params, 2_748_890);
    assert_eq!(first.recipe().epochs, 10);
    assert_eq!(first.recipe().momentum, 0.9, "recipe defaults are the paper's");
}

#[test]
fn table_2_block_types_at_nominal_depth() {
    let text = r#"
name = "table2"
dataset = "cifar10"
seeds = [1]
depth_convention = "nominal"
[[case]]
block = ["B(1,3,1)", "B(3,1)", "B(1,3)", "B(3,1,1)"]
depth = 40
width = 2
[[case]]
block = "B(3,3)"
depth = 28
width = 2
[[case]]
block = "B(3,1,3)"
depth = 22
width = 2
"#;
    let jobs = Spec::parse(text).unwrap().expand(false).unwrap().jobs;
    let params: Vec<u64> = jobs.iter().map(|j| j.params).collect();
    assert_eq!(params, [1_429_082, 1_211_354, 1_297_370, 1_343_066, 1_467_610, 1_145_498]);
    assert_eq!(jobs[0].cell.depth, 40);
    assert_eq!(jobs[0].cell.conv_depth(), 58);
}

#[test]
fn table_3_deepening_at_depth_40() {
    let text = with_grid("l = [1, 2, 3, 4]\ndepth = 40\nwidth = 2");
    let jobs = Spec::parse(&text).unwrap().expand(false).unwrap().jobs;
    let n: Vec<u32> = jobs.iter().map(|j| j.cell.blocks_per_group).collect();
    assert_eq!(n, [12, 6, 4, 3]);
    assert!(jobs.iter().all(|j| j.params == 2_243_546));
}

#[test]
fn exclusions_remove_matching_grid_cells() {
    let text = with_grid("depth = [16, 28]\nwidth = [4, 10]\n[[exclude]]\ndepth = 28\nwidth = 4");
    assert_eq!(Spec::parse(&text).unwrap().expand(false).unwrap().cells.len(), 3);
}

#[test]
fn bad_input_names_the_field() {
    let cases = [
        (with_grid("block = [\"B(3,5)\"]\ndepth = [16]\nwidth = [4]"), "grid.block"),
        (with_grid("depth = [30]\nwidth = [4]"), "grid.depth"),
        (with_grid("depth = [16]\nwidth = [0]"), "grid.width"),
        (with_grid("depth = [16]\nwidth = [4]\ndropout = [1.0]"), "grid.dropout"),
        (with_grid("depth = [16]\nwidth = []"), "grid.width"),
        (with_grid("depth = [16]\nwidth = [4]\nwidth = [8]"), "width"),
        (with_grid("depth = [16]\nwidth = [4, 4]"), "grid.width"),
        (with_grid("depth = [16]\nwidth = [4]\ncolour = [1]"), "colour"),
        (with_grid("depth = [16]\nwidth = [4]\n[[exclude]]\nwidth = 8"), "exclude[0]"),
        (with_grid("l = [2]\nblock = [\"B(3,3)\"]\ndepth = [16]\nwidth = [4]"), "grid.l"),
        (
            "name = \"s\"\ndataset = \"svhn\"\nseeds = [1]\n[grid]\ndepth = [16]\nwidth = [4]".to_string(),
            "dataset",
        ),
        ("name = \"s\"\ndataset = \"cifar10\"\nseeds = []\n[grid]\ndepth = [16]\nwidth = [4]".to_string(), "seeds"),
        (
            "name = \"s\"\ndataset = \"cifar10\"\nseeds = [1]\n[recipe]\nepochs = 100\nlr_milestones = [60, 120]\n[grid]\ndepth = [16]\nwidth = [4]".to_string(),
            "recipe.lr_milestones",
        ),
    ];
    for (text, field) in cases {
        let message = err(&text);
        assert!(message.contains(field), "expected {field:?} in {message:?}");
    }
}

fn with_seeds(seeds: &str) -> String {
    format!(
        "name = \"s\"\ndataset = \"cifar10\"\n{seeds}\n[recipe]\nepochs = 3\n[grid]\ndepth = [10, 16]\nwidth = [1]\n"
    )
}

#[test]
fn adaptive_seeds_start_with_the_first_seeds_and_hold_the_rest_in_reserve() {
    let spec = Spec::parse(&with_seeds("[seeds]\nstart = 3\nmax = 5\ntarget_ci = 0.2")).unwrap();
    assert_eq!(spec.seeds, [1, 2, 3]);
    assert_eq!(spec.adaptive, Some(AdaptiveSeeds { max: 5, target_ci: 0.2 }));
    assert_eq!(spec.count().unwrap(), (2, 10), "the limits count every seed the sweep may grow to");
    let expansion = spec.expand(false).unwrap();
    let seeds = |jobs: &[JobSpec]| jobs.iter().map(|j| (j.cell.depth, j.seed)).collect::<Vec<_>>();
    assert_eq!(seeds(&expansion.jobs), [(10, 1), (10, 2), (10, 3), (16, 1), (16, 2), (16, 3)]);
    assert_eq!(seeds(&expansion.reserve), [(10, 4), (10, 5), (16, 4), (16, 5)]);
    // The same seed of the same cell is the same job, whether it was in the
    // starting seeds or in the reserve.
    let listed = Spec::parse(&with_seeds("seeds = [1, 2, 3, 4, 5]")).unwrap().expand(false).unwrap();
    assert_eq!(listed.jobs[3].cell_hash, expansion.reserve[0].cell_hash);
    assert!(listed.reserve.is_empty());
}

#[test]
fn bad_adaptive_seeds_name_the_field() {
    let cases = [
        ("[seeds]\nstart = 0\nmax = 5\ntarget_ci = 0.2", "seeds.start"),
        ("[seeds]\nstart = 3\nmax = 2\ntarget_ci = 0.2", "seeds.max"),
        ("[seeds]\nstart = 3\nmax = 101\ntarget_ci = 0.2", "seeds.max"),
        ("[seeds]\nstart = 3\nmax = 5\ntarget_ci = 0.0", "seeds.target_ci"),
        ("[seeds]\nstart = 3\nmax = 5\ntarget_ci = nan", "seeds.target_ci"),
        ("[seeds]\nstart = 3\nmax = 5", "target_ci"),
        ("[seeds]\nstart = 3\nmaximum = 5\ntarget_ci = 0.2", "maximum"),
        ("seeds = \"1-5\"", "seeds"),
        ("seeds = [1.5]", "seeds"),
    ];
    for (seeds, field) in cases {
        let message = err(&with_seeds(seeds));
        assert!(message.contains(field), "expected {field:?} in {message:?}");
    }
}

#[test]
fn depth_error_names_the_nearest_valid_depths() {
    let message = err(&with_grid("depth = [30]\nwidth = [4]"));
    assert!(message.contains("28") && message.contains("34"), "{message}");
}

#[test]
fn large_sweeps_need_allow_large() {
    let seeds: Vec<String> = (0..2001).map(|s| s.to_string()).collect();
    let text = format!(
        "name = \"big\"\ndataset = \"cifar10\"\nseeds = [{}]\n[recipe]\nepochs = 2\nlr_milestones = []\n[grid]\ndepth = [10, 16, 22, 28, 34, 40, 46, 52, 58, 64]\nwidth = [1, 2, 3, 4, 5]\n",
        seeds.join(",")
    );
    let spec = Spec::parse(&text).unwrap();
    let message = spec.expand(false).map(|e| e.jobs.len()).unwrap_err().to_string();
    assert!(message.contains("--allow-large") && message.contains("100050"), "{message}");
    assert_eq!(spec.expand(true).unwrap().jobs.len(), 100_050);
}

#[test]
fn a_case_repeating_a_grid_cell_is_refused() {
    let text = with_grid("depth = [16]\nwidth = [4]\n[[case]]\ndepth = 16\nwidth = 4");
    assert!(err(&text).contains("case[0]"));
}

fn spec_text(
    depths: &[u64],
    widths: &[u64],
    dropouts: &[f64],
    seeds: &[u64],
    cases: usize,
    exclude_first_width: bool,
) -> String {
    let list = |v: Vec<String>| v.join(", ");
    let mut text = format!(
        "name = \"p\"\ndataset = \"cifar100\"\nseeds = [{}]\n[recipe]\nepochs = 3\nlr_milestones = [1]\n[grid]\ndepth = [{}]\nwidth = [{}]\ndropout = [{}]\n",
        list(seeds.iter().map(|s| s.to_string()).collect()),
        list(depths.iter().map(|s| s.to_string()).collect()),
        list(widths.iter().map(|s| s.to_string()).collect()),
        list(dropouts.iter().map(|d| format!("{d:?}")).collect()),
    );
    for i in 0..cases {
        // Cases use B(1,3,1) blocks, which the grid never has.
        text.push_str(&format!("[[case]]\nblock = \"B(1,3,1)\"\nblocks_per_group = {}\nwidth = 1\n", i + 1));
    }
    if exclude_first_width {
        text.push_str(&format!("[[exclude]]\nwidth = {}\n", widths[0]));
    }
    text
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn cell_count_is_product_plus_cases_minus_exclusions(
        depths in proptest::sample::subsequence(vec![10u64, 16, 22, 28, 34], 1..4),
        widths in proptest::sample::subsequence(vec![1u64, 2, 3, 4, 8], 1..4),
        dropouts in proptest::sample::subsequence(vec![0.0f64, 0.1, 0.3, 0.5], 1..3),
        seeds in proptest::sample::subsequence(vec![1u64, 2, 3, 7, 11], 1..5),
        cases in 0usize..4,
        exclude in any::<bool>(),
    ) {
        let text = spec_text(&depths, &widths, &dropouts, &seeds, cases, exclude);
        let expansion = Spec::parse(&text).unwrap().expand(false).unwrap();
        let excluded = if exclude { depths.len() * dropouts.len() } else { 0 };
        let cells = depths.len() * widths.len() * dropouts.len() + cases - excluded;
        prop_assert_eq!(expansion.cells.len(), cells);
        prop_assert_eq!(expansion.jobs.len(), cells * seeds.len());
    }

    #[test]
    fn hashes_are_stable_across_runs_and_field_order(
        depths in proptest::sample::subsequence(vec![10u64, 16, 22], 1..3),
        widths in proptest::sample::subsequence(vec![1u64, 2, 4], 1..3),
        seeds in proptest::sample::subsequence(vec![1u64, 2, 3], 1..3),
    ) {
        let text = spec_text(&depths, &widths, &[0.0], &seeds, 1, false);
        let hashes = |t: &str| -> Vec<String> {
            let mut h: Vec<String> = Spec::parse(t).unwrap().expand(false).unwrap().jobs.into_iter().map(|j| j.cell_hash).collect();
            h.sort();
            h
        };
        // The same document with its tables and keys in another order.
        let mut lines: Vec<&str> = text.lines().collect();
        let grid_start = lines.iter().position(|l| *l == "[grid]").unwrap();
        lines[grid_start + 1..grid_start + 4].reverse();
        let reordered = lines.join("\n");
        prop_assert_eq!(hashes(&text), hashes(&reordered));
        prop_assert_eq!(hashes(&text), hashes(&text));
    }
}

#[test]
fn hash_of_a_known_cell_never_changes() {
    // Guards the canonical form: changing it would make every stored sweep
    // look new on resubmission and rerun finished cells.
    // A short recipe re-estimates batch norm unless it says not to; saying
    // so gives the cell as it was before precise batch norm existed.
    let text = with_grid("depth = [16]\nwidth = [4]").replace("[grid]", "bn_recalibration_batches = 0\n[grid]");
    let job = &Spec::parse(&text).unwrap().expand(false).unwrap().jobs[0];
    assert_eq!(
        job.canonical_json(),
        r#"{"block":"B(3,3)","blocks_per_group":2,"dataset":"cifar10","dropout":0.0,"format":1,"recipe":{"batch_size":128,"checkpoint_every":1,"epochs":2,"lr":0.1,"lr_gamma":0.2,"lr_milestones":[],"momentum":0.9,"nesterov":true,"reset_momentum_on_drop":true,"train_subset":0,"weight_decay":0.0005},"seed":1,"width":4}"#
    );
    assert_eq!(job.cell_hash, "623db43fad3a7f5cd790e0a82ffc733218c88f11cb95f304e3cbd8d3f708cb1d");
}

/// Every recipe field set away from its default: pins the canonical form of
/// the shared recipe type, the fields left out at their defaults included.
/// The hash is the one the coordinator computed before the recipe moved to
/// widesweep-arch.
#[test]
fn hash_of_a_cell_with_a_full_recipe_never_changes() {
    let text = "name = \"s\"\ndataset = \"cifar10\"\nseeds = [1]\n[recipe]\nepochs = 30\nbatch_size = 64\nlr = 0.05\n\
        lr_milestones = [10, 20]\nlr_gamma = 0.1\nmomentum = 0.8\nnesterov = false\nweight_decay = 0.001\n\
        reset_momentum_on_drop = false\ntrain_subset = 1000\ntest_subset = 500\naugment = false\n\
        checkpoint_every = 5\nprecision = \"bf16\"\n[grid]\ndepth = [16]\nwidth = [4]\n";
    let job = &Spec::parse(text).unwrap().expand(false).unwrap().jobs[0];
    assert_eq!(
        job.canonical_json(),
        r#"{"block":"B(3,3)","blocks_per_group":2,"dataset":"cifar10","dropout":0.0,"format":1,"recipe":{"augment":false,"batch_size":64,"checkpoint_every":5,"epochs":30,"lr":0.05,"lr_gamma":0.1,"lr_milestones":[10,20],"momentum":0.8,"nesterov":false,"precision":"bf16","reset_momentum_on_drop":false,"test_subset":500,"train_subset":1000,"weight_decay":0.001},"seed":1,"width":4}"#
    );
    assert_eq!(job.cell_hash, "4c847d39e6d47b9c3b6b2beb3266387b9d46e517f356a0f3138007e8e4e44ce1");
}

/// A spec whose `[recipe]` table is `recipe` (and a one-cell grid).
fn with_recipe(recipe: &str) -> String {
    format!("name = \"s\"\ndataset = \"cifar10\"\nseeds = [1]\n[recipe]\n{recipe}\n[grid]\ndepth = [16]\nwidth = [4]\n")
}

/// Asserts that `text` is refused with an error naming `field`, the bad
/// `value` and the `valid` range.
fn assert_refused(text: &str, field: &str, value: &str, valid: &str) {
    let message = err(text);
    assert!(
        message.contains(field) && message.contains(value) && message.contains(valid),
        "expected {field:?}, {value:?} and {valid:?} in {message:?}\nfor\n{text}"
    );
}

/// The tester's input: 25769803792 = 2^32 * 6 + 16 was truncated to 16 and
/// stored as WRN-16.
#[test]
fn a_depth_beyond_u32_is_refused_not_truncated() {
    assert_refused(
        &with_grid("depth = [25769803792]\nwidth = [4]"),
        "grid.depth",
        "25769803792",
        "use an integer from 1 to 9604",
    );
}

#[test]
fn blocks_per_group_beyond_u32_is_refused_naming_the_field() {
    assert_refused(
        &with_grid("blocks_per_group = [4294967297]\nwidth = [4]"),
        "grid.blocks_per_group",
        "4294967297",
        "use an integer from 1 to 200",
    );
}

#[test]
fn width_and_l_beyond_u32_are_refused_naming_the_field() {
    assert_refused(
        &with_grid("depth = [16]\nwidth = [4294967300]"),
        "grid.width",
        "4294967300",
        "use an integer from 1 to 64",
    );
    assert_refused(
        &with_grid("l = [4294967298]\ndepth = [16]\nwidth = [4]"),
        "grid.l",
        "4294967298 is invalid",
        "use an integer from 1 to 16",
    );
}

#[test]
fn huge_integers_in_cases_and_exclusions_name_their_section() {
    let base = with_grid("depth = [16]\nwidth = [4]");
    assert_refused(
        &format!("{base}[[case]]\ndepth = 25769803792\nwidth = 4\n"),
        "case[0].depth",
        "25769803792",
        "from 1 to 9604",
    );
    assert_refused(
        &format!("{base}[[case]]\nblocks_per_group = 4294967297\nwidth = 4\n"),
        "case[0].blocks_per_group",
        "4294967297",
        "from 1 to 200",
    );
    assert_refused(
        &format!("{base}[[case]]\nl = 4294967298\nblocks_per_group = 1\nwidth = 4\n"),
        "case[0].l",
        "4294967298 is invalid",
        "from 1 to 16",
    );
    assert_refused(
        &format!("{base}[[case]]\ndepth = 16\nwidth = 4294967300\n"),
        "case[0].width",
        "4294967300",
        "from 1 to 64",
    );
    assert_refused(
        &format!("{base}[[exclude]]\ndepth = 25769803792\n"),
        "exclude[0].depth",
        "25769803792",
        "from 1 to 9604",
    );
    assert_refused(
        &format!("{base}[[exclude]]\nblocks_per_group = 4294967297\n"),
        "exclude[0].blocks_per_group",
        "4294967297",
        "from 1 to 200",
    );
}

#[test]
fn negative_integers_name_the_field() {
    assert_refused(&with_grid("depth = [-16]\nwidth = [4]"), "grid.depth", "-16", "from 1 to 9604");
    assert_refused(&with_grid("depth = [16]\nwidth = -4"), "grid.width", "-4", "from 1 to 64");
    assert_refused(
        "name = \"s\"\ndataset = \"cifar10\"\nseeds = [1, -1]\n[grid]\ndepth = [16]\nwidth = [4]\n",
        "seeds",
        "-1",
        "from 0 to 9223372036854775807",
    );
}

/// A depth that divides into whole blocks but gives more of them than a
/// network may have: the error names the depth the user wrote, not a
/// blocks_per_group they never gave.
#[test]
fn a_depth_with_too_many_blocks_names_the_depth() {
    // 1210 = 3 * 201 * 2 + 4 = 6 * 201 + 4: N = 201 in both conventions.
    assert_refused(&with_grid("depth = [1210]\nwidth = [1]"), "grid.depth", "N = 201", "from 10 to 1204");
    let nominal =
        with_grid("depth = [1210]\nwidth = [1]").replace("seeds = [1]", "seeds = [1]\ndepth_convention = \"nominal\"");
    assert_refused(&nominal, "grid.depth", "N = 201", "from 10 to 1204");
    assert_eq!(Spec::parse(&with_grid("depth = [1204]\nwidth = [1]")).unwrap().expand(false).unwrap().cells.len(), 1);
}

/// Each recipe integer beyond u32: refused while reading, naming the field,
/// the value and the range (the old parser said only "expected u32").
#[test]
fn recipe_integers_beyond_u32_name_the_field() {
    for (line, field, value, valid) in [
        ("epochs = 4294967296", "recipe.epochs", "4294967296", "from 1 to 10000"),
        ("epochs = -1", "recipe.epochs", "-1", "from 1 to 10000"),
        ("batch_size = 4294967298", "recipe.batch_size", "4294967298", "from 2 to 65536"),
        ("train_subset = 4294967296", "recipe.train_subset", "4294967296", "from 0 to 4294967295"),
        ("test_subset = 4294967296", "recipe.test_subset", "4294967296", "from 0 to 4294967295"),
        ("checkpoint_every = 4294967296", "recipe.checkpoint_every", "4294967296", "from 0 to 4294967295"),
        ("lr_milestones = [4294967297]", "recipe.lr_milestones", "4294967297", "below recipe.epochs"),
    ] {
        assert_refused(&with_recipe(line), field, value, valid);
    }
}

/// The coordinator once accepted batch_size = 1, which every worker refused
/// (batch norm needs two samples): now both apply the one validation.
#[test]
fn the_recipe_is_refused_where_a_worker_would_refuse_it() {
    for (recipe, field, valid) in [
        ("batch_size = 1", "recipe.batch_size", "batch norm needs two samples"),
        ("batch_size = 50001", "recipe.batch_size", "at most 50000"),
        ("epochs = 10001", "recipe.epochs", "from 1 to 10000"),
        ("epochs = 10\nlr_milestones = [5, 10]", "recipe.lr_milestones", "from 1 to 9"),
        ("lr_milestones = [0, 5]", "recipe.lr_milestones", "from 1"),
        ("train_subset = 100", "recipe.train_subset", "at least 128"),
    ] {
        let message = err(&with_recipe(recipe));
        assert!(message.contains(field) && message.contains(valid), "{recipe}: {message}");
    }
    let accepted = |recipe: &str| Spec::parse(&with_recipe(recipe)).and_then(|s| s.expand(false)).map(|e| e.jobs.len());
    assert_eq!(accepted("batch_size = 2\ntrain_subset = 2"), Ok(1));
    assert_eq!(accepted("epochs = 10\nlr_milestones = [1, 9]"), Ok(1));
}

#[test]
fn test_subset_enters_the_hash_only_when_set() {
    let plain = with_grid("depth = [16]\nwidth = [4]");
    let subset = plain.replace("[recipe]", "[recipe]\ntest_subset = 500");
    assert_ne!(subset, plain, "the fixture has a [recipe] table");
    let job = |text: &str| Spec::parse(text).unwrap().expand(false).unwrap().jobs[0].clone();
    assert!(!job(&plain).canonical_json().contains("test_subset"));
    assert!(job(&subset).canonical_json().contains(r#""test_subset":500"#));
    assert_ne!(job(&plain).cell_hash, job(&subset).cell_hash);
}

#[test]
fn precision_enters_the_hash_only_when_not_f32_and_bad_values_name_the_field() {
    let plain = with_grid("depth = [16]\nwidth = [4]");
    let with = |value: &str| plain.replace("[recipe]", &format!("[recipe]\nprecision = \"{value}\""));
    let job = |text: &str| Spec::parse(text).unwrap().expand(false).unwrap().jobs[0].clone();
    assert_eq!(job(&with("f32")).cell_hash, job(&plain).cell_hash, "f32 is the default: old hashes stand");
    assert!(!job(&plain).canonical_json().contains("precision"));
    let bf16 = job(&with("bf16"));
    assert_eq!(bf16.recipe().precision, widesweep_arch::Precision::Bf16);
    assert!(bf16.canonical_json().contains(r#""precision":"bf16""#));
    assert_ne!(bf16.cell_hash, job(&plain).cell_hash);
    let err = Spec::parse(&with("fp16")).unwrap_err().to_string();
    assert!(err.contains("precision") && err.contains("f32 or bf16"), "{err}");
}

/// A spec varying training: `[grid]` with `extra` axes on one network.
fn with_training(extra: &str) -> String {
    with_grid(&format!("depth = [16]\nwidth = [1]\n{extra}"))
}

#[test]
fn training_axes_multiply_and_each_cell_trains_its_own_recipe() {
    let text = with_training(
        "lr = [0.05, 0.1]\nweight_decay = [0.0005, 0.001]\ndataset = [\"fashion-mnist\", \"cifar10\"]\nepochs = [2, 10]",
    );
    let spec = Spec::parse(&text).unwrap();
    assert_eq!(spec.count().unwrap(), (16, 16));
    let expansion = spec.expand(false).unwrap();
    assert_eq!(expansion.jobs.len(), 16);
    let mut seen = std::collections::HashSet::new();
    for job in &expansion.jobs {
        let r = job.recipe();
        seen.insert((job.dataset().name(), r.lr.to_bits(), r.weight_decay.to_bits(), r.epochs));
        // Values not written per cell come from the spec's [recipe] (lr_milestones = [] there).
        assert_eq!(r.lr_milestones, Vec::<u32>::new());
        assert!(job.canonical_json().contains(&format!("\"epochs\":{}", r.epochs)));
    }
    assert_eq!(seen.len(), 16, "every combination once");
    let cell = &expansion.cells[0].training;
    assert_eq!(cell.label(), "dataset=fashion-mnist epochs=2 lr=0.05 weight_decay=0.0005");
    // The cost model follows the epochs and the dataset.
    let work = |dataset: &str, epochs: u32| {
        expansion.jobs.iter().find(|j| j.dataset().name() == dataset && j.recipe().epochs == epochs).unwrap().work
    };
    assert!((work("cifar10", 10) / work("cifar10", 2) - 5.0).abs() < 1e-9);
    assert!(work("fashion-mnist", 2) > work("cifar10", 2), "60,000 training images against 50,000");
}

#[test]
fn a_value_that_defaults_depend_on_is_resolved_per_cell() {
    // No lr_milestones anywhere: each cell's milestones are 30/60/80 % of its own epochs.
    let text = DEPTH_WIDTH.replace("lr_milestones = [5]\n", "").replace("dropout = [0.0, 0.3]", "epochs = [10, 100]");
    let expansion = Spec::parse(&text).unwrap().expand(false).unwrap();
    let milestones: Vec<(u32, Vec<u32>)> =
        expansion.jobs.iter().take(2 * 2).map(|j| (j.recipe().epochs, j.recipe().lr_milestones.clone())).collect();
    assert!(milestones.contains(&(10, vec![3, 6, 8])), "{milestones:?}");
    assert!(milestones.contains(&(100, vec![30, 60, 80])), "{milestones:?}");
}

#[test]
fn a_training_axis_at_the_specs_own_value_keeps_the_cells_hash() {
    let plain = Spec::parse(&with_training("")).unwrap().expand(false).unwrap();
    let axis = Spec::parse(&with_training("lr = [0.1, 0.05]\ndataset = \"cifar10\"")).unwrap().expand(false).unwrap();
    assert_eq!(plain.jobs[0].cell_hash, axis.jobs[0].cell_hash, "lr = 0.1 on cifar10 is the spec's own training");
    assert_ne!(axis.jobs[0].cell_hash, axis.jobs[1].cell_hash);
}

#[test]
fn training_axes_are_validated_per_cell_naming_the_field() {
    assert_refused(&with_training("lr = [0.1, -1.0]"), "grid.lr", "-1", "finite learning rate");
    assert_refused(&with_training("epochs = [2, 0]"), "grid.epochs", "0", "from 1 to 10000");
    assert_refused(&with_training("precision = [\"f32\", \"fp8\"]"), "grid.precision", "fp8", "f32 or bf16");
    assert_refused(&with_training("dataset = [\"cifar10\", \"imagenet\"]"), "grid.dataset", "imagenet", "cifar10");
    assert_refused(&with_training("lr = [0.1, 0.1]"), "grid.lr", "0.1", "distinct");
    // Valid alone, invalid with the cell's dataset: the message names the cell.
    let message = err(&with_training("dataset = [\"cifar10\", \"mnist\"]\nbatch_size = [128, 55000]"));
    assert!(
        message.contains("grid") && message.contains("batch_size = 55000") && message.contains("50000"),
        "{message}"
    );
    // Valid alone, invalid with the spec's other fields (milestones past a cell's epochs).
    let message = err(&with_grid("depth = [16]\nwidth = [1]\nlr_milestones = [[1], [5]]"));
    assert!(message.contains("grid") && message.contains("recipe.lr_milestones"), "{message}");
    // checkpoint_every changes no result: it is not an axis.
    let message = err(&with_training("checkpoint_every = [1, 2]"));
    assert!(message.contains("checkpoint_every"), "{message}");
}

#[test]
fn milestones_vary_with_a_list_of_lists_and_a_case_gives_one() {
    let text = DEPTH_WIDTH
        .replace("lr_milestones = [5]\n", "")
        .replace("dropout = [0.0, 0.3]", "lr_milestones = [[5], [3, 6]]");
    let expansion = Spec::parse(&text).unwrap().expand(false).unwrap();
    assert_eq!(expansion.cells.len(), 2 * 2 * 2);
    let text = format!("{DEPTH_WIDTH}\n[[case]]\ndepth = 40\nwidth = 1\nlr_milestones = [3, 6]\n");
    let expansion = Spec::parse(&text).unwrap().expand(false).unwrap();
    let case = expansion.jobs.last().unwrap();
    assert_eq!(case.recipe().lr_milestones, vec![3, 6]);
    assert_eq!(case.cell.training.label(), "lr_milestones=[3, 6]");
}

#[test]
fn exclusions_match_training_axes_by_value() {
    let text =
        with_training("lr = [0.05, 0.1]\nweight_decay = [0.0005, 0.001]\n[[exclude]]\nlr = 0.05\nweight_decay = 1e-3");
    let expansion = Spec::parse(&text).unwrap().expand(false).unwrap();
    let left: Vec<String> = expansion.cells.iter().map(|c| c.training.label()).collect();
    assert_eq!(left, ["lr=0.05 weight_decay=0.0005", "lr=0.1 weight_decay=0.0005", "lr=0.1 weight_decay=0.001"]);
    // An exclusion naming the spec's own value of a field the grid does not vary matches every cell.
    let text = with_training("lr = [0.05, 0.1]\n[[exclude]]\nlr = 0.05\nmomentum = 0.9");
    assert_eq!(Spec::parse(&text).unwrap().expand(false).unwrap().cells.len(), 1);
}

const ENGINES: &str = r#"
name = "engines"
dataset = "fashion-mnist"
seeds = [1, 2]

[recipe]
epochs = 2
lr_milestones = []

[engines.pytorch]
command = ["python", "train.py"]
env = { OMP_NUM_THREADS = "4" }
grace_seconds = 30

[grid]
blocks_per_group = [1]
width = [1, 2]
engine = ["candle", "pytorch"]

[[case]]
engine = "pytorch"
blocks_per_group = 1
width = 4
params = { mixup = [0.0, 0.2], label_smoothing = 0.1 }
"#;

#[test]
fn an_engine_axis_and_params_expand_and_enter_the_hash_only_off_candle() {
    let spec = Spec::parse(ENGINES).unwrap();
    let expansion = spec.expand(false).unwrap();
    assert_eq!(expansion.cells.len(), 2 * 2 + 2);
    let engines: Vec<&str> = expansion.cells.iter().map(|c| c.training.engine.as_str()).collect();
    assert_eq!(engines, ["candle", "pytorch", "candle", "pytorch", "pytorch", "pytorch"]);
    assert_eq!(spec.engines.defined["pytorch"].grace_seconds, 30);
    assert_eq!(spec.engines.defined["pytorch"].heartbeat_seconds, widesweep_arch::DEFAULT_HEARTBEAT_SECONDS);
    let case = &expansion.cells[4].training;
    assert_eq!(case.params["mixup"], widesweep_arch::ParamValue::Float(0.0));
    assert_eq!(case.params["label_smoothing"], widesweep_arch::ParamValue::Float(0.1));
    assert_eq!(case.label(), "engine=pytorch label_smoothing=0.1 mixup=0.0");

    // A candle cell hashes as it did before engines existed; the same
    // network trained by a command is another cell.
    let candle = &expansion.jobs[0];
    assert!(!candle.canonical_json().contains("engine") && !candle.canonical_json().contains("params"));
    let plain =
        Spec::parse(ENGINES.replace("engine = [\"candle\", \"pytorch\"]", "").split("[[case]]").next().unwrap())
            .unwrap()
            .expand(false)
            .unwrap();
    assert_eq!(candle.cell_hash, plain.jobs[0].cell_hash);
    let pytorch = &expansion.jobs[2];
    assert!(pytorch.canonical_json().contains(r#""engine":"pytorch""#), "{}", pytorch.canonical_json());
    assert_ne!(pytorch.cell_hash, candle.cell_hash);
    assert!(expansion.jobs[8].canonical_json().contains(r#""params":{"label_smoothing":0.1,"mixup":0.0}"#));
}

#[test]
fn an_engine_table_is_the_default_engine_of_every_cell() {
    let text = with_grid("blocks_per_group = [1]\nwidth = [1]\n[grid.params]\nhidden = [32, 64]\n")
        + "[engine]\ncommand = [\"python3\", \"train.py\"]\n";
    let expansion = Spec::parse(&text).unwrap().expand(false).unwrap();
    assert!(expansion.cells.iter().all(|c| c.training.engine == SINGLE_ENGINE));
    let hidden: Vec<String> = expansion.cells.iter().map(|c| c.training.params["hidden"].to_string()).collect();
    assert_eq!(hidden, ["32", "64"]);
}

#[test]
fn bad_engines_and_params_name_the_field() {
    let grid = "blocks_per_group = [1]\nwidth = [1]\n";
    let command = "[engine]\ncommand = [\"python3\", \"t.py\"]\n";
    for (text, field, says) in [
        (with_grid(&format!("{grid}engine = [\"torch\"]")), "grid.engine", "not an engine of this spec"),
        (with_grid(&format!("{grid}[grid.params]\nmixup = [0.1]")), "grid.params", "takes no params"),
        (with_grid(&format!("{grid}[grid.params]\nMixUp = [0.1]")) + command, "grid.params.MixUp", "is invalid"),
        (with_grid(&format!("{grid}[grid.params]\nmixup = [0.1, 0.1]")) + command, "grid.params.mixup", "twice"),
        (
            with_grid(&format!("{grid}[grid.params]\nmixup = [[1]]")) + command,
            "grid.params.mixup",
            "use a string, integer",
        ),
        (with_grid(grid) + "[engine]\ncommand = []\n", "engine.command", "is empty"),
        (
            with_grid(grid) + command + "env = { WIDESWEEP_SOCKET = \"x\" }\n",
            "engine.env.WIDESWEEP_SOCKET",
            "set by the worker",
        ),
        (with_grid(grid) + command + "grace_seconds = 0\n", "engine.grace_seconds", "1 to"),
        (with_grid(grid) + "[engines.candle]\ncommand = [\"x\"]\n", "engines.candle", "built-in"),
    ] {
        let error = err(&text);
        assert!(error.contains(field) && error.contains(says), "expected {field} / {says}, got: {error}\n{text}");
    }
}
