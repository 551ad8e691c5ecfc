package ec2emu

import (
	"encoding/base64"
	"encoding/json"
	"sort"
	"strings"
	"time"
)

// ssmParam is one Parameter Store entry.
type ssmParam struct {
	name, typ, value, desc, dataType string
	version                          int64
	modified                         time.Time
	tags                             map[string]string
	seeded                           bool
	seq                              int64
	// history holds every version's value (SecureString rotation: a
	// selector name:N reads an old one).
	history map[int64]string
}

type ssmParamJSON struct {
	Name             string  `json:"Name"`
	Type             string  `json:"Type"`
	Value            string  `json:"Value"`
	Version          int64   `json:"Version"`
	LastModifiedDate float64 `json:"LastModifiedDate"`
	ARN              string  `json:"ARN"`
	DataType         string  `json:"DataType"`
	Selector         string  `json:"Selector,omitempty"`
}

func (r *region) paramJSON(p *ssmParam, decrypt bool) ssmParamJSON {
	v := p.value
	if p.typ == "SecureString" && !decrypt {
		// A stand-in for KMS ciphertext: clearly not the plaintext.
		v = base64.StdEncoding.EncodeToString([]byte("ec2emu-kms-stand-in:" + p.value))
	}
	return ssmParamJSON{Name: p.name, Type: p.typ, Value: v, Version: p.version,
		LastModifiedDate: float64(p.modified.UnixMilli()) / 1000,
		ARN:              "arn:aws:ssm:" + r.name + ":" + r.s.account + ":parameter/" + strings.TrimPrefix(p.name, "/"),
		DataType:         p.dataType}
}

// dispatchSSM serves the Parameter Store subset of SSM (JSON 1.1). Runs under s.mu.
func (s *Server) dispatchSSM(req *request) (any, *apiError) {
	if out, aerr, ok := s.dispatchSSMSession(req); ok {
		return out, aerr
	}
	if out, aerr, ok := s.dispatchRunCommand(req); ok {
		return out, aerr
	}
	r := req.region
	var in struct {
		Name           string
		Names          []string
		Value          string
		Type           string
		Description    string
		DataType       string
		Overwrite      bool
		WithDecryption bool
		Path           string
		Recursive      bool
		Tags           []struct{ Key, Value string }
	}
	if len(req.body) > 0 {
		if err := json.Unmarshal(req.body, &in); err != nil {
			return nil, errf("SerializationException", "cannot decode request JSON: %v", err)
		}
	}
	notFound := func(name string) *apiError {
		return errf("ParameterNotFound", "Parameter %s not found.", name)
	}
	switch req.action {
	case "PutParameter":
		if in.Name == "" {
			return nil, errf("ValidationException", "1 validation error detected: Value null at 'name' failed to satisfy constraint: Member must not be null")
		}
		if in.Value == "" {
			return nil, errf("ValidationException", "1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1")
		}
		low := strings.ToLower(strings.TrimPrefix(in.Name, "/"))
		if strings.HasPrefix(low, "aws") || strings.HasPrefix(low, "ssm") {
			return nil, errf("ValidationException", "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive).")
		}
		if in.Overwrite && len(in.Tags) > 0 {
			return nil, errf("ValidationException", "Invalid request: tags and overwrite can't be used together. To create a parameter with tags, please remove overwrite flag. To update tags for an existing parameter, please use AddTagsToResource or RemoveTagsFromResource.")
		}
		switch in.Type {
		case "", "String", "StringList", "SecureString":
		default:
			return nil, errf("ValidationException", "1 validation error detected: Value '%s' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]", in.Type)
		}
		dt := in.DataType
		if dt == "" {
			dt = "text"
			// An overwrite without DataType keeps the parameter's data type.
			if old := r.params[in.Name]; old != nil && in.Overwrite {
				dt = old.dataType
			}
		}
		if dt != "text" && dt != "aws:ec2:image" {
			return nil, errf("ValidationException", "The following data type is not supported: %s (supported: text, aws:ec2:image)", dt)
		}
		if dt == "aws:ec2:image" && !reAMI.MatchString(in.Value) {
			return nil, errf("ValidationException", "Parameter value, %s, is not a valid AMI id for data type aws:ec2:image.", in.Value)
		}
		p := r.params[in.Name]
		if p != nil && !in.Overwrite {
			return nil, errf("ParameterAlreadyExists", "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.")
		}
		if p == nil {
			if in.Type == "" {
				return nil, errf("ValidationException", "A parameter type is required when you create a parameter.")
			}
			tags := map[string]string{}
			for _, t := range in.Tags {
				tags[t.Key] = t.Value
			}
			p = &ssmParam{name: in.Name, typ: in.Type, tags: tags, seq: s.nextSeq()}
			r.params[in.Name] = p
		} else if in.Type != "" {
			p.typ = in.Type
		}
		p.value, p.dataType, p.modified = in.Value, dt, req.now
		if in.Description != "" {
			p.desc = in.Description
		}
		p.version++
		if p.history == nil {
			p.history = map[int64]string{}
		}
		p.history[p.version] = p.value
		return map[string]any{"Version": p.version, "Tier": "Standard"}, nil
	case "GetParameter":
		return r.getParameterVersion(in.Name, in.WithDecryption)
	case "GetParameters":
		found, invalid := []ssmParamJSON{}, []string{}
		for _, n := range in.Names {
			if p := r.params[n]; p != nil {
				found = append(found, r.paramJSON(p, in.WithDecryption))
			} else {
				invalid = append(invalid, n)
			}
		}
		return map[string]any{"Parameters": found, "InvalidParameters": invalid}, nil
	case "GetParametersByPath":
		if !strings.HasPrefix(in.Path, "/") {
			return nil, errf("ValidationException", "The parameter doesn't meet the parameter name requirements. The parameter name must begin with a forward slash \"/\".")
		}
		prefix := strings.TrimSuffix(in.Path, "/") + "/"
		var names []string
		for n := range r.params {
			if !strings.HasPrefix(n, prefix) {
				continue
			}
			if !in.Recursive && strings.Contains(strings.TrimPrefix(n, prefix), "/") {
				continue
			}
			names = append(names, n)
		}
		sort.Strings(names)
		out := []ssmParamJSON{}
		for _, n := range names {
			out = append(out, r.paramJSON(r.params[n], in.WithDecryption))
		}
		return map[string]any{"Parameters": out}, nil
	case "DeleteParameter":
		if r.params[in.Name] == nil {
			return nil, notFound(in.Name)
		}
		delete(r.params, in.Name)
		return map[string]any{}, nil
	case "DeleteParameters":
		deleted, invalid := []string{}, []string{}
		for _, n := range in.Names {
			if r.params[n] != nil {
				delete(r.params, n)
				deleted = append(deleted, n)
			} else {
				invalid = append(invalid, n)
			}
		}
		return map[string]any{"DeletedParameters": deleted, "InvalidParameters": invalid}, nil
	}
	return nil, errf("InvalidAction", "The action %s is not implemented by the emulator's SSM Parameter Store", req.action)
}
