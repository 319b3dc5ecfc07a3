//! libtorch is really linked and computes: a convolution checked against values worked out by hand.

use tch::{Device, Kind, Tensor};

#[test]
fn conv2d_on_cpu_matches_hand_computation() {
    // Input: 1 batch, 2 channels of 3x3.
    //   c0 = [1 2 3; 4 5 6; 7 8 9]      c1 = all 1
    let c0: Vec<f32> = (1..=9).map(|v| v as f32).collect();
    let c1 = vec![1.0f32; 9];
    let input = Tensor::from_slice(&[c0, c1].concat()).reshape([1, 2, 3, 3]);
    // Weight: 2 output channels, 2 input channels, 2x2 kernels.
    //   out0: k(c0) = [1 0; 0 -1], k(c1) = [0 0; 0 0]   -> x[i][j] - x[i+1][j+1] = -4 everywhere
    //   out1: k(c0) = [0 1; 1 0],  k(c1) = [1 1; 1 1]   -> x[i][j+1] + x[i+1][j] + 4
    #[rustfmt::skip]
    let weight = Tensor::from_slice(&[
        1.0f32, 0.0, 0.0, -1.0,   0.0, 0.0, 0.0, 0.0,
        0.0,    1.0, 1.0,  0.0,   1.0, 1.0, 1.0, 1.0,
    ])
    .reshape([2, 2, 2, 2]);
    let bias = Tensor::from_slice(&[0.5f32, -1.0]);
    let output = input.conv2d(&weight, Some(&bias), [1, 1], [0, 0], [1, 1], 1);

    assert_eq!(output.size(), [1, 2, 2, 2]);
    assert_eq!(output.device(), Device::Cpu);
    assert_eq!(output.kind(), Kind::Float);
    // out0 = -4 + 0.5.
    // out1 at (0,0): 2 + 4 + 4 - 1 = 9; (0,1): 3 + 5 + 3 = 11; (1,0): 5 + 7 + 3 = 15; (1,1): 6 + 8 + 3 = 17.
    let expected = [-3.5f32, -3.5, -3.5, -3.5, 9.0, 11.0, 15.0, 17.0];
    let actual = Vec::<f32>::try_from(output.flatten(0, -1)).unwrap();
    assert_eq!(actual, expected);
}

#[test]
fn strided_padded_conv2d_matches_hand_computation() {
    // A 1x1x4x4 ramp 0..15, a 3x3 box filter, stride 2, padding 1: each output sums a clipped window.
    let input = Tensor::arange(16, (Kind::Float, Device::Cpu)).reshape([1, 1, 4, 4]);
    let weight = Tensor::ones([1, 1, 3, 3], (Kind::Float, Device::Cpu));
    let output = input.conv2d(&weight, None::<&Tensor>, [2, 2], [1, 1], [1, 1], 1);
    assert_eq!(output.size(), [1, 1, 2, 2]);
    // (0,0): rows 0-1, cols 0-1 -> 0+1+4+5 = 10
    // (0,1): rows 0-1, cols 1-3 -> 1+2+3+5+6+7 = 24
    // (1,0): rows 1-3, cols 0-1 -> 4+5+8+9+12+13 = 51
    // (1,1): rows 1-3, cols 1-3 -> 5+6+7+9+10+11+13+14+15 = 90
    let actual = Vec::<f32>::try_from(output.flatten(0, -1)).unwrap();
    assert_eq!(actual, [10.0, 24.0, 51.0, 90.0]);
}
