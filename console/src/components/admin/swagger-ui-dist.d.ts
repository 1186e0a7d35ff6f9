// The part of swagger-ui-dist's bundle the API docs page uses (the package ships no types).
declare module 'swagger-ui-dist/swagger-ui-es-bundle.js' {
  export interface SwaggerRequest {
    url: string;
    method?: string;
    headers: Record<string, string>;
    [key: string]: unknown;
  }
  export interface SwaggerUIOptions {
    domNode: HTMLElement;
    url?: string;
    spec?: object;
    deepLinking?: boolean;
    validatorUrl?: string | null;
    presets?: unknown[];
    plugins?: unknown[];
    layout?: string;
    docExpansion?: 'list' | 'full' | 'none';
    defaultModelsExpandDepth?: number;
    filter?: boolean | string;
    persistAuthorization?: boolean;
    tryItOutEnabled?: boolean;
    displayRequestDuration?: boolean;
    syntaxHighlight?: false | { activated?: boolean; theme?: string };
    requestInterceptor?: (req: SwaggerRequest) => SwaggerRequest | Promise<SwaggerRequest>;
    onComplete?: () => void;
    [key: string]: unknown;
  }
  export interface SwaggerUIInstance {
    specActions?: unknown;
    [key: string]: unknown;
  }
  interface SwaggerUIBundle {
    (options: SwaggerUIOptions): SwaggerUIInstance;
    presets: { apis: unknown };
    plugins: Record<string, unknown>;
  }
  const bundle: SwaggerUIBundle;
  export default bundle;
}
