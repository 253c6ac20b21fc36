use crate::{BASE_WIDTH, IMAGE_SIZE, WrnConfig};

/// One convolution: no bias, square kernel, padding kernel / 2.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ConvSpec {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    /// Spatial side of the input feature map.
    pub input_size: usize,
}

impl ConvSpec {
    pub fn padding(&self) -> usize {
        self.kernel / 2
    }

    pub fn output_size(&self) -> usize {
        (self.input_size + 2 * self.padding() - self.kernel) / self.stride + 1
    }

    pub fn weight_shape(&self) -> [usize; 4] {
        [self.out_channels, self.in_channels, self.kernel, self.kernel]
    }

    pub fn params(&self) -> u64 {
        (self.out_channels * self.in_channels * self.kernel * self.kernel) as u64
    }

    /// Multiply-accumulates for one image.
    pub fn macs(&self) -> u64 {
        let out = self.output_size();
        self.params() * (out * out) as u64
    }

    pub fn output_elems(&self) -> u64 {
        let out = self.output_size();
        (self.out_channels * out * out) as u64
    }
}

/// One pre-activation residual block. Convolution i is preceded by
/// BN -> ReLU over `convs[i].in_channels` channels (with dropout between
/// convolutions, after the ReLU). When the block changes the channel count,
/// the first BN -> ReLU is applied once before the split and feeds both the
/// residual branch and the 1x1 `shortcut` projection.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct BlockPlan {
    pub convs: Vec<ConvSpec>,
    pub shortcut: Option<ConvSpec>,
}

impl BlockPlan {
    pub fn in_channels(&self) -> usize {
        self.convs[0].in_channels
    }

    /// BN layers of the block, by the channel count they normalise.
    pub fn bn_channels(&self) -> impl Iterator<Item = usize> + '_ {
        self.convs.iter().map(|c| c.in_channels)
    }
}

#[derive(Clone, PartialEq, Eq, Debug)]
pub struct GroupPlan {
    pub width: usize,
    pub stride: usize,
    pub blocks: Vec<BlockPlan>,
}

/// BN -> ReLU -> global average pool over `pool_size` x `pool_size` -> Linear with bias.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct HeadSpec {
    pub channels: usize,
    pub pool_size: usize,
    pub num_classes: usize,
}

/// Every layer of one network with its shapes.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct NetworkPlan {
    pub stem: ConvSpec,
    pub groups: Vec<GroupPlan>,
    pub head: HeadSpec,
}

impl NetworkPlan {
    pub fn of(cfg: &WrnConfig) -> Self {
        let stem = ConvSpec {
            in_channels: cfg.in_channels,
            out_channels: BASE_WIDTH,
            kernel: 3,
            stride: 1,
            input_size: IMAGE_SIZE,
        };
        let mut channels = BASE_WIDTH;
        let mut size = IMAGE_SIZE;
        let mut groups = Vec::with_capacity(3);
        for (group_idx, width) in cfg.group_widths().into_iter().enumerate() {
            let group_stride = if group_idx == 0 { 1 } else { 2 };
            let mut blocks = Vec::with_capacity(cfg.blocks_per_group);
            for block_idx in 0..cfg.blocks_per_group {
                let stride = if block_idx == 0 { group_stride } else { 1 };
                let mut convs = Vec::with_capacity(cfg.block.deepening());
                let mut conv_in = channels;
                let mut conv_size = size;
                for (conv_idx, &kernel) in cfg.block.kernels().iter().enumerate() {
                    let conv = ConvSpec {
                        in_channels: conv_in,
                        out_channels: width,
                        kernel,
                        stride: if conv_idx == 0 { stride } else { 1 },
                        input_size: conv_size,
                    };
                    conv_in = width;
                    conv_size = conv.output_size();
                    convs.push(conv);
                }
                let shortcut = (channels != width).then_some(ConvSpec {
                    in_channels: channels,
                    out_channels: width,
                    kernel: 1,
                    stride,
                    input_size: size,
                });
                blocks.push(BlockPlan { convs, shortcut });
                channels = width;
                size = conv_size;
            }
            groups.push(GroupPlan { width, stride: group_stride, blocks });
        }
        let head = HeadSpec { channels, pool_size: size, num_classes: cfg.num_classes };
        Self { stem, groups, head }
    }

    pub fn blocks(&self) -> impl Iterator<Item = &BlockPlan> {
        self.groups.iter().flat_map(|g| g.blocks.iter())
    }

    /// Every convolution, stem and shortcuts included.
    pub fn convs(&self) -> impl Iterator<Item = &ConvSpec> {
        std::iter::once(&self.stem).chain(self.blocks().flat_map(|b| b.convs.iter().chain(b.shortcut.iter())))
    }

    /// Trainable parameters: conv weights, BN gamma and beta, shortcut
    /// projections, the final BN and the classifier with its bias. Running
    /// statistics are buffers, not parameters.
    pub fn param_count(&self) -> u64 {
        let conv: u64 = self.convs().map(ConvSpec::params).sum();
        let bn: u64 = self.blocks().flat_map(BlockPlan::bn_channels).map(|c| 2 * c as u64).sum::<u64>()
            + 2 * self.head.channels as u64;
        let fc = (self.head.channels * self.head.num_classes + self.head.num_classes) as u64;
        conv + bn + fc
    }

    /// Forward multiply-accumulates per image: convolutions and the classifier.
    pub fn forward_macs(&self) -> u64 {
        self.convs().map(ConvSpec::macs).sum::<u64>() + (self.head.channels * self.head.num_classes) as u64
    }

    /// Activation elements per image that a training step keeps for the
    /// backward pass: each convolution's input and output, and each BN's
    /// normalised output (a lower bound; frameworks may keep more).
    pub fn activation_elems(&self) -> u64 {
        let convs: u64 = self.convs().map(|c| c.output_elems() * 3).sum();
        let input = (self.stem.in_channels * IMAGE_SIZE * IMAGE_SIZE) as u64;
        convs + input
    }
}

#[cfg(test)]
mod tests {
    use crate::{BlockPattern, Dataset, WrnConfig};

    /// Exact parameter counts of the paper's networks (CIFAR-10, CIFAR-100),
    /// as the official implementation counts them (weights, batch-norm scales
    /// and shifts, the classifier's bias; no running statistics).
    const BASIC: &[(usize, usize, u64, Option<u64>)] = &[
        (16, 4, 2_748_890, Some(2_772_020)),
        (16, 8, 10_961_370, Some(11_007_540)),
        (16, 10, 17_116_634, Some(17_174_324)),
        (22, 8, 17_158_106, Some(17_204_276)),
        (22, 10, 26_797_914, Some(26_855_604)),
        (28, 10, 36_479_194, Some(36_536_884)),
        (28, 12, 52_517_850, Some(52_587_060)),
        (40, 1, 563_930, Some(569_780)),
        (40, 2, 2_243_546, Some(2_255_156)),
        (40, 4, 8_949_210, Some(8_972_340)),
        (40, 8, 35_748_314, Some(35_794_484)),
        (40, 10, 55_841_754, Some(55_899_444)),
        (52, 1, 758_362, None),
    ];

    #[test]
    fn basic_block_counts_match_the_reference() {
        for &(depth, k, c10, c100) in BASIC {
            let got = WrnConfig::wrn(depth, k, Dataset::Cifar10).unwrap().plan().param_count();
            assert_eq!(got, c10, "WRN-{depth}-{k} CIFAR-10");
            if let Some(c100) = c100 {
                let got = WrnConfig::wrn(depth, k, Dataset::Cifar100).unwrap().plan().param_count();
                assert_eq!(got, c100, "WRN-{depth}-{k} CIFAR-100");
            }
        }
    }

    #[test]
    fn block_type_counts_at_nominal_depth_match_table_2() {
        let table = [
            ("B(1,3,1)", 6, 1_429_082),
            ("B(3,1)", 6, 1_211_354),
            ("B(1,3)", 6, 1_297_370),
            ("B(3,1,1)", 6, 1_343_066),
            ("B(3,3)", 4, 1_467_610),
            ("B(3,1,3)", 3, 1_145_498),
        ];
        for (block, n, exact) in table {
            let cfg = WrnConfig::new(block.parse().unwrap(), n, 2, 0.0, 3, 10).unwrap();
            assert_eq!(cfg.plan().param_count(), exact, "{block} N={n}");
        }
    }

    #[test]
    fn deepening_study_keeps_wrn_40_2_parameters() {
        for (l, n) in [(1, 12), (2, 6), (3, 4), (4, 3)] {
            let block = BlockPattern::deepened(l).unwrap();
            assert_eq!(WrnConfig::blocks_for_depth(40, &block).unwrap(), n);
            let cfg = WrnConfig::new(block, n, 2, 0.0, 3, 10).unwrap();
            assert_eq!(cfg.plan().param_count(), 2_243_546, "l = {l}");
            assert_eq!(cfg.depth(), 40);
        }
    }

    #[test]
    fn forward_macs_match_the_reference_to_two_digits() {
        for (depth, k, gmacs) in [(16, 4, 0.39), (40, 4, 1.30), (16, 8, 1.55), (16, 10, 2.41), (28, 10, 5.24)] {
            let macs = WrnConfig::wrn(depth, k, Dataset::Cifar10).unwrap().plan().forward_macs();
            let got = macs as f64 / 1e9;
            assert!((got - gmacs).abs() < 0.006, "WRN-{depth}-{k}: {got:.3} G vs {gmacs} G");
        }
    }

    #[test]
    fn shortcut_exists_only_where_channels_change() {
        let plan = WrnConfig::wrn(16, 1, Dataset::Cifar10).unwrap().plan();
        assert!(plan.groups[0].blocks[0].shortcut.is_none(), "16 -> 16 is an identity");
        assert!(plan.groups[1].blocks[0].shortcut.is_some());
        assert!(plan.groups[1].blocks[1].shortcut.is_none());
        let wide = WrnConfig::wrn(16, 4, Dataset::Cifar10).unwrap().plan();
        let sc = wide.groups[0].blocks[0].shortcut.unwrap();
        assert_eq!((sc.stride, sc.in_channels, sc.out_channels), (1, 16, 64));
        assert_eq!(wide.head.pool_size, 8);
    }

    #[test]
    fn depth_that_does_not_divide_names_the_nearest_valid_depths() {
        let err = WrnConfig::wrn(30, 4, Dataset::Cifar10).unwrap_err().to_string();
        assert!(err.contains("28") && err.contains("34"), "{err}");
        let err = WrnConfig::blocks_for_depth(28, &"B(3,1,3)".parse().unwrap()).unwrap_err().to_string();
        assert!(err.contains("22") && err.contains("31"), "{err}");
    }

    #[test]
    fn greyscale_networks_have_one_input_channel() {
        let cfg = WrnConfig::wrn(16, 4, Dataset::FashionMnist).unwrap();
        assert_eq!(cfg.plan().stem.in_channels, 1);
        assert_eq!(WrnConfig::wrn_16_4(Dataset::Cifar10).plan().param_count() - cfg.plan().param_count(), 2 * 16 * 9);
    }
}
