package policy

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
)

// newEnv declares the input document's top-level names.
func newEnv() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable("image", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("inventory", cel.MapType(cel.StringType, cel.DynType)),
		cel.Variable("findings", cel.ListType(cel.DynType)),
		cel.Variable("secrets", cel.ListType(cel.DynType)),
		cel.Variable("base", cel.MapType(cel.StringType, cel.DynType)),
		ext.Strings(),
	)
}

// compile checks a condition: it must parse, type-check, and be a bool.
func compile(env *cel.Env, expr string) (cel.Program, error) {
	ast, iss := env.Compile(expr)
	if iss.Err() != nil {
		return nil, fmt.Errorf("CEL: %s", strings.ReplaceAll(strings.TrimSpace(iss.Err().Error()), "\n", " "))
	}
	if t := ast.OutputType(); t != cel.BoolType && t != cel.DynType {
		return nil, fmt.Errorf("CEL: condition is %s, want bool", t)
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize), cel.CostLimit(10_000_000))
	if err != nil {
		return nil, fmt.Errorf("CEL: %w", err)
	}
	return prg, nil
}

// eval runs a condition over the input document.
func eval(prg cel.Program, doc map[string]any) (bool, error) {
	out, _, err := prg.Eval(doc)
	if err != nil {
		return false, err
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, errors.New("condition did not give a bool")
	}
	return b, nil
}
