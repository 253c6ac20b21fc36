//! The one conversion between the wire's `Recipe` and widesweep-arch's, the
//! type the coordinator validates specs with and the worker trains by: a
//! field added to the recipe is added here once, for both.

use widesweep_arch::{ParsePrecisionError, Precision, Recipe};

use crate::v1 as pb;

impl From<&Recipe> for pb::Recipe {
    fn from(r: &Recipe) -> Self {
        pb::Recipe {
            epochs: r.epochs,
            batch_size: r.batch_size,
            lr: r.lr,
            lr_milestones: r.lr_milestones.clone(),
            lr_gamma: r.lr_gamma,
            momentum: r.momentum,
            nesterov: r.nesterov,
            weight_decay: r.weight_decay,
            train_subset: r.train_subset,
            test_subset: r.test_subset,
            augment: Some(r.augment),
            checkpoint_every: r.checkpoint_every,
            reset_momentum_on_drop: r.reset_momentum_on_drop,
            precision: r.precision.to_string(),
            bn_recalibration_batches: r.bn_recalibration_batches,
        }
    }
}

/// Reads a recipe off the wire, filling what a peer from before a field
/// existed left unset (augment: on; precision: f32). Only the precision's
/// name can fail here; the ranges are [`Recipe::validate_for`]'s to check.
impl TryFrom<&pb::Recipe> for Recipe {
    type Error = ParsePrecisionError;

    fn try_from(r: &pb::Recipe) -> Result<Self, Self::Error> {
        Ok(Recipe {
            epochs: r.epochs,
            batch_size: r.batch_size,
            lr: r.lr,
            lr_milestones: r.lr_milestones.clone(),
            lr_gamma: r.lr_gamma,
            momentum: r.momentum,
            nesterov: r.nesterov,
            weight_decay: r.weight_decay,
            reset_momentum_on_drop: r.reset_momentum_on_drop,
            train_subset: r.train_subset,
            test_subset: r.test_subset,
            augment: r.augment.unwrap_or(true),
            checkpoint_every: r.checkpoint_every,
            precision: Precision::from_wire(&r.precision)?,
            bn_recalibration_batches: r.bn_recalibration_batches,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recipe_survives_the_wire() {
        let recipe = Recipe {
            precision: Precision::Bf16,
            augment: false,
            lr_milestones: vec![3, 7],
            bn_recalibration_batches: 25,
            ..Recipe::default()
        };
        let wire = pb::Recipe::from(&recipe);
        assert_eq!(Recipe::try_from(&wire), Ok(recipe));
    }

    #[test]
    fn fields_an_older_peer_left_unset_take_their_defaults() {
        let wire = pb::Recipe { augment: None, precision: String::new(), ..pb::Recipe::from(&Recipe::default()) };
        let recipe = Recipe::try_from(&wire).unwrap();
        assert!(recipe.augment);
        assert_eq!(recipe.precision, Precision::F32);
        let bad = pb::Recipe { precision: "fp8".into(), ..wire };
        assert!(Recipe::try_from(&bad).is_err());
    }
}
