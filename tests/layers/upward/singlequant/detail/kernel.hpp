// fixture: a detail header including a public one (the check must reject it)
#include "../config.hpp"
#include "../view.hpp"
