// The umbrella header: core, autograd and every CPU op family. Include single
// headers instead to keep compile times down in large projects.
#pragma once

#include "avgrad/autograd/engine.hpp"
#include "avgrad/autograd/gradcheck.hpp"
#include "avgrad/autograd/grad_mode.hpp"
#include "avgrad/core/allocator.hpp"
#include "avgrad/core/error.hpp"
#include "avgrad/core/philox.hpp"
#include "avgrad/core/shape.hpp"
#include "avgrad/core/tensor.hpp"
#include "avgrad/ops/binary.hpp"
#include "avgrad/ops/reduce.hpp"
#include "avgrad/ops/unary.hpp"
#include "avgrad/ops/view.hpp"
