// cudasim stands in for the CUDA header of this name (see cudasim.hpp).
#pragma once
#include "cudasim.hpp"
