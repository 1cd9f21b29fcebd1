package fuzztest

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"sync"
)

// Token is the credential the server accepts, as "Authorization: Bearer
// Token".
const Token = "planted-good-token"

// AWSKey is the AWS-style access key id the faulty server leaks.
const AWSKey = "AKIAQ3EGRT5ZWXYZ7QPL"

// LongName is the name length over which the faulty server answers 500.
const LongName = 1000

// Spec is the server's OpenAPI 3.0 document.
const Spec = `{
  "openapi": "3.0.3",
  "info": {"title": "planted", "version": "1"},
  "components": {
    "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    "schemas": {
      "Item": {"type": "object", "required": ["id", "name"], "properties": {
        "id": {"type": "integer"}, "name": {"type": "string"}, "note": {"type": "string"}, "owner": {"type": "string"}}},
      "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}}
    },
    "responses": {
      "Error": {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    }
  },
  "security": [{"bearer": []}],
  "paths": {
    "/items": {
      "post": {
        "operationId": "createItem",
        "requestBody": {"required": true, "content": {"application/json": {"schema": {
          "type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "maxLength": 5000}, "note": {"type": "string"}}}}}},
        "responses": {
          "201": {"description": "created", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}},
            "links": {"GetItem": {"operationId": "getItem", "parameters": {"itemId": "$response.body#/id"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "401": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/items/{itemId}": {
      "get": {
        "operationId": "getItem",
        "parameters": [{"name": "itemId", "in": "path", "required": true, "schema": {"type": "integer"}}],
        "responses": {
          "200": {"description": "the item", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Item"}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "401": {"$ref": "#/components/responses/Error"},
          "404": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/reports": {
      "get": {
        "operationId": "getReport",
        "parameters": [{"name": "format", "in": "query", "required": true, "schema": {"type": "string", "enum": ["csv", "pdf"]}}],
        "responses": {
          "200": {"description": "the report", "content": {"application/json": {"schema": {"type": "object", "properties": {"format": {"type": "string"}}}}}},
          "400": {"$ref": "#/components/responses/Error"},
          "401": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/admin/users": {
      "get": {
        "operationId": "listAdminUsers",
        "responses": {
          "200": {"description": "the users", "content": {"application/json": {"schema": {"type": "object", "properties": {"users": {"type": "array", "items": {"type": "string"}}}}}}},
          "401": {"$ref": "#/components/responses/Error"}
        }
      }
    },
    "/healthz": {
      "get": {"operationId": "healthz", "security": [], "responses": {"200": {"description": "ok"}}}
    }
  }
}`

// Server is the planted-fault API.
type Server struct {
	// Faulty plants the faults; false makes a clean server.
	Faulty bool

	mu    sync.Mutex
	items map[int]item
	next  int
	// Requests counts the requests served.
	Requests int
}

type item struct {
	ID    int    `json:"id"`
	Name  string `json:"name"`
	Note  string `json:"note,omitempty"`
	Owner string `json:"owner,omitempty"`
}

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /items", s.auth(s.createItem))
	mux.HandleFunc("GET /items/{itemId}", s.auth(s.getItem))
	mux.HandleFunc("GET /reports", s.auth(s.getReport))
	admin := s.auth(s.listUsers)
	if s.Faulty {
		admin = s.listUsers // planted: no authentication
	}
	mux.HandleFunc("GET /admin/users", admin)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) })
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.Requests++
		s.mu.Unlock()
		mux.ServeHTTP(w, r)
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func fail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"error": msg})
}

func (s *Server) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte("Bearer "+Token)) != 1 {
			fail(w, http.StatusUnauthorized, "unauthorized")
			return
		}
		h(w, r)
	}
}

func (s *Server) createItem(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name *string `json:"name"`
		Note string  `json:"note"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	if err := dec.Decode(&in); err != nil || in.Name == nil {
		fail(w, http.StatusBadRequest, "want {\"name\": string}")
		return
	}
	if len(*in.Name) > LongName {
		if s.Faulty {
			http.Error(w, "internal error", http.StatusInternalServerError) // planted
			return
		}
		fail(w, http.StatusBadRequest, fmt.Sprintf("name over %d bytes", LongName))
		return
	}
	s.mu.Lock()
	if s.items == nil {
		s.items = map[int]item{}
	}
	s.next++
	it := item{ID: s.next, Name: *in.Name, Note: in.Note}
	if s.Faulty {
		it.Owner = "alice@corp.example" // planted: an e-mail address not granted
	}
	s.items[it.ID] = it
	s.mu.Unlock()
	writeJSON(w, http.StatusCreated, it)
}

func (s *Server) getItem(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.PathValue("itemId"))
	if err != nil {
		if s.Faulty {
			fail(w, http.StatusTeapot, "not a number") // planted: undeclared status
			return
		}
		fail(w, http.StatusBadRequest, "itemId: not a number")
		return
	}
	s.mu.Lock()
	it, ok := s.items[id]
	s.mu.Unlock()
	if !ok {
		fail(w, http.StatusNotFound, "no such item")
		return
	}
	writeJSON(w, http.StatusOK, it)
}

func (s *Server) getReport(w http.ResponseWriter, r *http.Request) {
	f := r.URL.Query().Get("format")
	if f != "csv" && f != "pdf" {
		if s.Faulty {
			// planted: a credential in an error body
			fail(w, http.StatusBadRequest, "unsupported format; exporter aws_access_key_id="+AWSKey)
			return
		}
		fail(w, http.StatusBadRequest, "unsupported format")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"format": f})
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string][]string{"users": {"root", "ops"}})
}
